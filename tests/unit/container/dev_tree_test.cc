// Which /dev stays out of CRIU's images (container/dev_tree.h): only
// liblxc's autodev tmpfs with its mounts, read from a mount table. The
// tree's own check runs on a prepared tmpfs in the integration suite
// (DevTreeTest: it needs mounts).
#include "lxmig/container/dev_tree.h"

#include <gtest/gtest.h>

#include <string>

namespace lxmig::container {
namespace {

// A container's mountinfo as liblxc leaves it, with `dev` as /dev's line
// and `more` after the mounts on it.
std::string table(const std::string& dev, const std::string& more = "") {
  return "160 118 8:1 /var/lib/lxmig/lxc/web/rootfs / rw,relatime shared:6 - ext4 /dev/root rw\n" + dev +
         "\n"
         "175 168 0:47 / /dev/shm rw,nosuid,nodev,relatime shared:8 - tmpfs tmpfs rw\n"
         "176 168 0:43 / /dev/mqueue rw,nosuid,nodev,noexec,relatime shared:9 - mqueue mqueue rw\n"
         "177 168 0:48 / /dev/pts rw,nosuid,noexec,relatime shared:10 - devpts devpts rw,gid=5,mode=620\n"
         "178 168 0:48 /ptmx /dev/ptmx rw,nosuid,noexec,relatime shared:11 - devpts devpts rw,gid=5,mode=620\n"
         "117 171 0:44 /.lxc-boot-id /proc/sys/kernel/random/boot_id ro,nosuid,nodev,noexec,relatime shared:7 - "
         "tmpfs none rw,size=492k,mode=755\n" +
         more;
}
constexpr const char* kDev = "168 160 0:44 / /dev rw,relatime shared:7 - tmpfs none rw,size=492k,mode=755";

TEST(DevTree, OnlyLiblxcsAutodevStaysOut) {
  EXPECT_EQ(devMountProblem(table(kDev)), "");
  EXPECT_EQ(devMountProblem(table("168 160 0:44 / /dev rw,relatime - tmpfs none rw,size=492k,mode=755")), "")
      << "no propagation tag";
  EXPECT_EQ(devMountProblem(table("")), "/dev is not a mount point");
  EXPECT_EQ(devMountProblem(table("168 160 0:44 / /dev rw,relatime - tmpfs none rw,size=1024k,mode=755")),
            "/dev's tmpfs has the options `rw,size=1024k,mode=755`");
  EXPECT_EQ(devMountProblem(table("168 160 0:44 / /dev rw,relatime - tmpfs tmpfs rw,size=492k,mode=755")),
            "/dev's tmpfs has the source `tmpfs`");
  EXPECT_EQ(devMountProblem(table("168 160 0:44 / /dev rw,nosuid,relatime - tmpfs none rw,size=492k,mode=755")),
            "/dev is mounted with `rw,nosuid,relatime`");
  EXPECT_EQ(devMountProblem(table("168 160 8:1 /srv /dev rw,relatime - ext4 /dev/root rw")),
            "/dev is a `ext4` mount, not a tmpfs");
  EXPECT_EQ(devMountProblem(table(std::string(kDev) + "\n169 168 0:50 / /dev rw,relatime - tmpfs none "
                                                      "rw,size=492k,mode=755")),
            "/dev is mounted 2 times")
      << "the one below is hidden";
  // The mounts on the tree: what one hides is not seen by the tree's check.
  std::string noPts = table(kDev);
  noPts.erase(noPts.find("177 168"), noPts.find("178 168") - noPts.find("177 168"));
  EXPECT_EQ(devMountProblem(noPts), "/dev/pts is not a mount point");
}

TEST(DevTree, BootIdsAreTheKernelsShape) {
  EXPECT_TRUE(isBootId("0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"));
  for (const char* bad : {"", "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5", "0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D",
                          "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d\n", "0a1b2c3d 4e5f-6a7b-8c9d-0e1f2a3b4c5d",
                          "0a1b2c3d-4e5f-6a7b-8c9d0-e1f2a3b4c5d", "../../../../etc/passwd-0000-0000-000000"})
    EXPECT_FALSE(isBootId(bad)) << bad;
}

TEST(DevTree, NothingIsPreparedForABadBootIdOrPath) {
  // Checked before anything is made (no root needed to see it refused).
  const std::string id = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d";
  for (const auto& [dir, bootId] :
       std::initializer_list<std::pair<std::string, std::string>>{{"/run/lxmig/images/x.dev", "not-an-id"},
                                                                  {"/run/lxmig/images/a b.dev", id},
                                                                  {"relative.dev", id},
                                                                  {"/run/x\n.dev", id}}) {
    auto dev = prepareDev(dir, bootId);
    ASSERT_FALSE(dev.ok()) << dir;
    EXPECT_EQ(dev.status().code(), Code::kInvalidArgument) << dir;
    EXPECT_EQ(dev.status().message().find('\n'), std::string::npos) << dev.status().message();
  }
}

TEST(DevTree, AProcessWithoutInitIsRefused) {
  std::string id;
  EXPECT_FALSE(devProblem(0, &id).ok());
}

}  // namespace
}  // namespace lxmig::container
