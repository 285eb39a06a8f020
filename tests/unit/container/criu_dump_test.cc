#include "criu_dump.h"

#include <gtest/gtest.h>

#include "lxmig/base/files.h"

namespace lxmig::container {
namespace {

// A config as LxcHost::define writes it (a bind and a device).
constexpr const char* kConfig =
    "# written by lxmigd; lxmig.json holds the container's spec\n"
    "lxc.uts.name = c1\n"
    "lxc.rootfs.path = dir:/var/lib/n1/lxc/c1/rootfs\n"
    "lxc.mount.entry = /usr usr none ro,bind 0 0\n"
    "lxc.mount.entry = /etc etc none ro,bind 0 0\n"
    "lxc.mount.entry = /tmp/bsrc data none bind,create=dir 0 0\n"
    "lxc.mount.entry = /dev/fuse dev/fuse none bind,create=file 0 0\n"
    "lxc.mount.entry = tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0\n"
    "lxc.mount.entry = mqueue dev/mqueue mqueue rw,nosuid,nodev,noexec,create=dir 0 0\n"
    "lxc.mount.auto = cgroup:mixed proc:mixed sys:ro\n"
    "lxc.console.path = none\n"
    "lxc.cgroup.dir.container = dv-n1/payload.c1\n";

// /proc/INIT/cgroup of a container's init on a host with v1 hierarchies
// and a cgroup2 one beside them (this machine's layout).
constexpr const char* kHybrid =
    "9:name=systemd:/dv-n1/payload.c1\n"
    "8:pids:/dv-n1/payload.c1\n"
    "7:blkio:/dv-n1/payload.c1\n"
    "6:freezer:/dv-n1/payload.c1\n"
    "5:devices:/dv-n1/payload.c1\n"
    "4:memory:/dv-n1/payload.c1\n"
    "3:cpuset:/dv-n1/payload.c1\n"
    "2:cpuacct:/dv-n1/payload.c1\n"
    "1:cpu:/dv-n1/payload.c1\n"
    "0::/dv-n1/payload.c1\n";

CriuDumpPlan plan(const char* cgroups, bool unified = false) {
  CriuDumpPlan p;
  p.imagesDir = "/var/lib/n1/state/images/50d7e2c0cfe386fa";
  p.init = 25095;
  p.initCgroups = cgroups;
  p.payload = "/dv-n1/payload.c1";
  p.unified = unified;
  p.config = kConfig;
  return p;
}

std::string joined(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

TEST(CriuDumpArgs, AreWhatLiblxcPassedOnAHybridHost) {
  auto args = criuDumpArgs(plan(kHybrid));
  ASSERT_TRUE(args.ok()) << args.status().toString();
  // liblxc 5.0.2's checkpoint of the same container, as it ran CRIU here
  // (its `criu` argv, recorded by a wrapper), but for the device's bind
  // and the cgroup2 hierarchy: liblxc named that one by its controllers
  // (`hugetlb:`), which CRIU matches to none (it names cgroup2 ""), so
  // CRIU walked init's path there, the root given here.
  const std::string dir = "/var/lib/n1/state/images/50d7e2c0cfe386fa";
  EXPECT_EQ(joined(*args),
            "dump --tcp-established --file-locks --link-remap --manage-cgroups=full --ext-mount-map auto "
            "--enable-external-sharing --enable-external-masters --enable-fs hugetlbfs --enable-fs tracefs -D " +
                dir + " -o " + dir +
                "/dump.log --cgroup-root name=systemd:/dv-n1/payload.c1 --cgroup-root pids:/dv-n1/payload.c1 "
                "--cgroup-root blkio:/dv-n1/payload.c1 --cgroup-root freezer:/dv-n1/payload.c1 --cgroup-root "
                "devices:/dv-n1/payload.c1 --cgroup-root memory:/dv-n1/payload.c1 --cgroup-root "
                "cpuset:/dv-n1/payload.c1 --cgroup-root cpuacct:/dv-n1/payload.c1 --cgroup-root "
                "cpu:/dv-n1/payload.c1 --cgroup-root :/dv-n1/payload.c1 --ext-mount-map /usr:usr --ext-mount-map "
                "/etc:etc --ext-mount-map /data:data "
                "--ext-mount-map /dev/fuse:dev/fuse -t 25095 --skip-in-flight --freeze-cgroup "
                "/sys/fs/cgroup/freezer/dv-n1/payload.c1 --force-irmap --leave-running");
}

TEST(CriuDumpArgs, NameCgroup2ByItsEmptyControllerList) {
  auto args = criuDumpArgs(plan("0::/dv-n1/payload.c1\n", true));
  ASSERT_TRUE(args.ok()) << args.status().toString();
  const std::string s = joined(*args);
  EXPECT_NE(s.find(" --cgroup-root :/dv-n1/payload.c1 "), std::string::npos) << s;
  EXPECT_NE(s.find(" --freeze-cgroup /sys/fs/cgroup/dv-n1/payload.c1 "), std::string::npos) << s;
}

TEST(CriuDumpArgs, CountAnInitInASubCgroupOfItsContainer) {
  // A container may move its processes within its own cgroup (cgroup:mixed).
  auto args = criuDumpArgs(plan("4:memory:/dv-n1/payload.c1/inner\n1:cpu:/dv-n1/payload.c10\n"));
  ASSERT_TRUE(args.ok()) << args.status().toString();
  const std::string s = joined(*args);
  EXPECT_NE(s.find("--cgroup-root memory:/dv-n1/payload.c1 "), std::string::npos) << s;
  EXPECT_EQ(s.find("cpu:"), std::string::npos) << "payload.c10 is another container's: " << s;
}

TEST(CriuDumpArgs, RefuseWhatIsNotTheContainersInit) {
  EXPECT_FALSE(criuDumpArgs(plan("4:memory:/dv-n1/payload.c2\n0::/\n")).ok());
  EXPECT_FALSE(criuDumpArgs(plan("4:memory /x:/dv-n1/payload.c1\n")).ok());
  EXPECT_FALSE(criuDumpArgs(plan("garbage\n")).ok());
  auto p = plan(kHybrid);
  p.init = 0;
  EXPECT_FALSE(criuDumpArgs(p).ok());
  p = plan(kHybrid);
  p.payload = "/dv-n1/payload.c1:x";
  EXPECT_FALSE(criuDumpArgs(p).ok());
}

TEST(CriuDumpArgs, RefuseAMountEntryCriuCannotName) {
  auto p = plan(kHybrid);
  p.config += "lxc.mount.entry = /srv /abs none bind 0 0\n";
  EXPECT_FALSE(criuDumpArgs(p).ok());
  p = plan(kHybrid);
  p.config += "lxc.mount.entry = /srv a:b none bind 0 0\n";
  EXPECT_FALSE(criuDumpArgs(p).ok());
  p = plan(kHybrid);
  p.config += "lxc.mount.entry = /srv\n";
  EXPECT_FALSE(criuDumpArgs(p).ok());
}

TEST(CriuDumpArgs, MapRecursiveBindsAndSkipOtherMounts) {
  auto p = plan(kHybrid);
  p.config += "lxc.mount.entry = /srv srv none rbind,ro 0 0\nlxc.mount.entry = proc xproc proc rw 0 0\n";
  auto args = criuDumpArgs(p);
  ASSERT_TRUE(args.ok()) << args.status().toString();
  const std::string s = joined(*args);
  EXPECT_NE(s.find("--ext-mount-map /srv:srv"), std::string::npos) << s;
  EXPECT_EQ(s.find("xproc"), std::string::npos) << s;
  EXPECT_EQ(s.find("dev/shm"), std::string::npos) << s;
}

}  // namespace
}  // namespace lxmig::container
