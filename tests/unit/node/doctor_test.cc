// Doctor checks that read the machine, on stand-in sysfs trees.
#include "lxmig/node/doctor.h"

#include <gtest/gtest.h>

#include <string>

#include "lxmig/base/files.h"
#include "unit/temp_dir.h"

namespace lxmig::node {
namespace {

class HostMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  std::string sys() const { return tmp_.path(); }
  void device(const std::string& name, const std::string& id, const std::string& features) {
    const std::string d = sys() + "/bus/virtio/devices/" + name;
    ASSERT_TRUE(makeDirs(d, 0755).ok());
    ASSERT_TRUE(writeFileAtomic(d + "/device", id + "\n").ok());
    ASSERT_TRUE(writeFileAtomic(d + "/features", features + "\n").ok());
  }

 private:
  lxmig::testing::TempDir tmp_{"lxmig-doctor-test"};
};

TEST_F(HostMemoryTest, ABalloonThatReportsFreePagesIsSeen) {
  EXPECT_FALSE(hostReclaimsFreeMemory(sys())) << "no virtio bus at all";
  device("virtio1", "0x0002", "00100110");  // a block device: bit 5 is another feature
  EXPECT_FALSE(hostReclaimsFreeMemory(sys()));
  device("virtio0", "0x0005", "01100001");  // a balloon without reporting
  EXPECT_FALSE(hostReclaimsFreeMemory(sys()));
  device("virtio0", "0x0005", "01100101");  // this machine's: stats, deflate on OOM, reporting
  EXPECT_TRUE(hostReclaimsFreeMemory(sys()));
}

TEST_F(HostMemoryTest, AShortFeatureListIsNoReporting) {
  device("virtio0", "0x0005", "0110");
  EXPECT_FALSE(hostReclaimsFreeMemory(sys()));
}

}  // namespace
}  // namespace lxmig::node
