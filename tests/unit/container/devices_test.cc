// Device needs and placement: pure logic on fake device lists, plus the
// parsers on this machine's own standard device nodes.
#include <gtest/gtest.h>

#include "lxmig/container/devices.h"

namespace lxmig::container::devices {
namespace {

Device dev(char type, uint32_t maj, uint32_t min, std::string path, std::string cls = "") {
  Device d;
  d.type = type;
  d.major = maj;
  d.minor = min;
  d.path = std::move(path);
  d.cls = std::move(cls);
  return d;
}

TEST(Devices, SameDeviceFitsAndKeepsItsNodePath) {
  Device tun = dev('c', 10, 200, "/dev/net/tun");
  tun.seen = {"configured: --device /dev/net/tun"};
  auto p = place({tun}, {}, {dev('c', 10, 200, "/srv/tun"), dev('c', 10, 229, "/dev/fuse")}, "n2", "web");
  EXPECT_TRUE(p.missing.empty());
  EXPECT_EQ(p.hostPath.at("/dev/net/tun"), "/srv/tun");
}

TEST(Devices, MissingDeviceIsOneLineNamingNodeDeviceContainerAndWhy) {
  Device fuse = dev('c', 10, 229, "/dev/fuse");
  fuse.seen = {"open by pid 4 'sshfs' (fd 3)"};
  Device tun = dev('c', 10, 200, "/dev/net/tun");
  tun.seen = {"configured: --device /dev/net/tun"};
  auto p = place({fuse, tun}, {}, {dev('c', 10, 200, "/dev/net/tun")}, "node2", "web");
  ASSERT_EQ(p.missing.size(), 1u);
  EXPECT_EQ(p.missing[0], "node2 lacks c 10:229 /dev/fuse needed by container web (open by pid 4 'sshfs' (fd 3))");
}

TEST(Devices, ClassMapsToAnotherDeviceOfTheSameTypeOnly) {
  Device gpu = dev('c', 195, 0, "/dev/nvidia0");
  std::vector<Device> source = {dev('c', 195, 0, "/dev/nvidia0", "gpu")};
  auto ok = place({gpu}, source, {dev('c', 195, 1, "/dev/nvidia1", "gpu")}, "n2", "ml");
  EXPECT_TRUE(ok.missing.empty());
  EXPECT_EQ(ok.hostPath.at("/dev/nvidia0"), "/dev/nvidia1");
  EXPECT_EQ(ok.target.at("/dev/nvidia0").minor, 1u);

  auto bad = place({gpu}, source, {dev('b', 7, 0, "/dev/loop0", "gpu")}, "n2", "ml");
  ASSERT_EQ(bad.missing.size(), 1u);
  EXPECT_NE(bad.missing[0].find("a device of another type"), std::string::npos) << bad.missing[0];
  // Without a class on the source there is no mapping.
  auto none = place({gpu}, {}, {dev('c', 195, 1, "/dev/nvidia1", "gpu")}, "n2", "ml");
  EXPECT_EQ(none.missing.size(), 1u);
}

TEST(Devices, StandardDevicesAreNeverNeeds) {
  EXPECT_TRUE(standardDevice(dev('c', 1, 3, "/dev/null")));
  EXPECT_TRUE(standardDevice(dev('c', 136, 4, "/dev/pts/4")));
  EXPECT_FALSE(standardDevice(dev('c', 10, 200, "/dev/net/tun")));
  EXPECT_FALSE(standardDevice(dev('b', 1, 3, "/dev/ram3")));
  // Config: rules and device bind mounts count; wildcards and /dev/null do not.
  auto need = requirements({},
                           "lxc.cgroup.devices.allow = c 10:200 rwm\n"
                           "lxc.cgroup2.devices.allow = c *:* m\n"
                           "lxc.cgroup.devices.allow = c 1:3 rwm\n"
                           "lxc.mount.entry = /dev/null dev/null none bind,create=file 0 0\n",
                           {});
  ASSERT_EQ(need.size(), 1u);
  EXPECT_EQ(need[0].id(), "c 10:200");
}

TEST(Devices, ParsersRejectWhatIsNotADevice) {
  auto n = statDevice("/dev/null");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->id(), "c 1:3");
  EXPECT_EQ(statDevice("/etc/hostname").status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(statDevice("/dev/no-such-device").ok());
  EXPECT_FALSE(parseDeviceFlag("/dev/no-such-device").ok());
  EXPECT_FALSE(parseDeviceFlag("dev/null").ok());
  EXPECT_FALSE(parseDeviceFlag("/dev/null:../x").ok());
  auto b = parseDeviceFlag("/dev/null:/dev/mynull");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->containerPath, "/dev/mynull");
  auto offer = parseOffer("/dev/null, x=/dev/zero");
  ASSERT_TRUE(offer.ok());
  ASSERT_EQ(offer->size(), 2u);
  EXPECT_EQ((*offer)[1].cls, "x");
  EXPECT_FALSE(parseOffer("/etc/hostname").ok());
  EXPECT_FALSE(parseOffer("=/dev/null").ok());
}

}  // namespace
}  // namespace lxmig::container::devices
