// What reaches a container's LXC config file: nothing with a control
// character (a newline in `-e NAME=value` once started an
// lxc.hook.pre-start line that ran on the host), no mount entry it cannot
// write unambiguously.
#include <gtest/gtest.h>

#include "lxmig/base/files.h"
#include "lxmig/container/lxc_host.h"
#include "unit/temp_dir.h"

namespace lxmig::container {
namespace {

class LxcConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  ContainerParams params() {
    ContainerParams p;
    p.name = "web";
    p.ip = "10.200.1.10";
    p.gateway = "10.200.0.1";
    p.hwaddr = "02:4c:4d:00:00:01";
    p.bridge = "lxbr0";
    return p;
  }
  lxmig::testing::TempDir tmp_{"lxmig-lxcconfig"};
  LxcHost host_{tmp_.path(), "lxmig-test"};
};

TEST_F(LxcConfigTest, AnOrdinaryContainerIsWritten) {
  auto p = params();
  p.env = {"GREETING=hello world", "EMPTY="};
  ASSERT_TRUE(host_.define(p).ok());
  auto cfg = readFile(tmp_.path() + "/web/config");
  ASSERT_TRUE(cfg.ok());
  EXPECT_NE(cfg->find("lxc.environment = GREETING=hello world\n"), std::string::npos) << *cfg;
}

TEST_F(LxcConfigTest, AMergedContainerHasEveryAddressOnItsInterface) {
  auto p = params();
  p.extraIps = {"10.200.1.11", "10.200.1.12"};
  ASSERT_TRUE(host_.define(p).ok());
  auto cfg = readFile(tmp_.path() + "/web/config");
  ASSERT_TRUE(cfg.ok());
  for (const char* a : {"10.200.1.10/16", "10.200.1.11/16", "10.200.1.12/16"})
    EXPECT_NE(cfg->find(std::string("lxc.net.0.ipv4.address = ") + a + "\n"), std::string::npos) << a << *cfg;
}

TEST_F(LxcConfigTest, ControlCharactersInAnyValueRefuseTheConfig) {
  auto p = params();
  p.env = {"A=b\nlxc.hook.pre-start = /bin/sh -c 'touch /tmp/owned'"};
  Status st = host_.define(p);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.toString();
  EXPECT_FALSE(pathExists(tmp_.path() + "/web/config"));
  p = params();
  p.hwaddr = "02:4c:4d:00:00:01\nlxc.apparmor.profile = unconfined";
  EXPECT_EQ(host_.define(p).code(), Code::kInvalidArgument);
  p = params();
  p.bridge = "br0\r";
  EXPECT_EQ(host_.define(p).code(), Code::kInvalidArgument);
  EXPECT_FALSE(pathExists(tmp_.path() + "/web/config"));
}

TEST_F(LxcConfigTest, BadNamesAndMountEntriesAreRefused) {
  auto p = params();
  p.name = "../web";
  EXPECT_EQ(host_.define(p).code(), Code::kInvalidArgument);
  p = params();
  p.binds = {{tmp_.path(), "/srv/a b", true}};
  Status st = host_.define(p);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.toString();
  EXPECT_NE(st.message().find("blanks"), std::string::npos) << st.message();
  p.binds = {{tmp_.path(), "/srv/../../etc", true}};
  EXPECT_EQ(host_.define(p).code(), Code::kInvalidArgument);
  p.binds = {{tmp_.path(), "/", true}};
  EXPECT_EQ(host_.define(p).code(), Code::kInvalidArgument);
  EXPECT_FALSE(pathExists(tmp_.path() + "/web/config"));
}

}  // namespace
}  // namespace lxmig::container
