// Which /dev/shm stays out of CRIU's images (container/dev_shm.h): only the
// mount lxmig's containers get, read from a mount table.
#include "lxmig/container/dev_shm.h"

#include <gtest/gtest.h>

#include <string>

namespace lxmig::container {
namespace {

// A container's mountinfo as liblxc leaves it, with `shm` as /dev/shm's line.
std::string table(const std::string& shm) {
  return "160 118 8:1 /var/lib/lxmig/lxc/web/rootfs / rw,relatime master:1 - ext4 /dev/root rw\n"
         "168 160 0:44 / /dev rw,relatime shared:7 - tmpfs none rw,size=492k,mode=755\n" +
         shm + "\n177 168 0:48 / /dev/pts rw,nosuid,noexec,relatime shared:9 - devpts devpts rw,mode=620\n";
}

TEST(DevShm, OnlyTheStandardTmpfsStaysOut) {
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime shared:8 - tmpfs tmpfs rw")),
            "");
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw")), "")
      << "no propagation tag";
  EXPECT_EQ(devShmMountProblem(table("")), "/dev/shm is not a mount point");
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime shared:8 - tmpfs tmpfs "
                                     "rw,size=1024k")),
            "/dev/shm's tmpfs has the options `rw,size=1024k`");
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,relatime shared:8 - tmpfs tmpfs rw")),
            "/dev/shm is mounted with `rw,relatime`");
  EXPECT_EQ(devShmMountProblem(table("176 168 8:1 /srv /dev/shm rw,nosuid,nodev,relatime - ext4 /dev/root rw")),
            "/dev/shm is a `ext4` mount, not a tmpfs");
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 /sub /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw")),
            "/dev/shm is a bind of `/sub`");
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime shared:8")),
            "/dev/shm's line of mountinfo has no file system");
  EXPECT_NE(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime  - tmpfs tmpfs rw")), "")
      << "fields as the kernel writes them, one blank apart";
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime - tmpfs shm rw")),
            "/dev/shm's tmpfs has the source `shm`");
  // Mounted over: the one below is hidden, and CRIU would carry it.
  EXPECT_EQ(devShmMountProblem(table("176 168 0:47 / /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw\n"
                                     "178 176 0:49 / /dev/shm rw,nosuid,nodev,relatime - tmpfs tmpfs rw")),
            "/dev/shm is mounted 2 times");
}

TEST(DevShm, AProcessWithoutInitIsRefused) {
  DevShmFiles files;
  EXPECT_FALSE(devShmProblem(0, DevShmHolds::kNothing, &files).ok());
  EXPECT_FALSE(devShmProblem(0, DevShmHolds::kPlainFiles, &files).ok());
}

TEST(DevShm, APathTheWrapperWouldSplitIsNotPrepared) {
  // Checked before anything is made (no root needed to see it refused).
  for (const char* bad : {"/run/lxmig/images/a b.devshm", "/run/x*.devshm", "relative.devshm", "", "/run/x\n.devshm"}) {
    auto shm = prepareDevShm(bad);
    ASSERT_FALSE(shm.ok()) << bad;
    EXPECT_EQ(shm.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(shm.status().message().find('\n'), std::string::npos) << shm.status().message();
  }
}

}  // namespace
}  // namespace lxmig::container
