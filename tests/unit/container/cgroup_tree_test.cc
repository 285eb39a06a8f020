// cgroup2's controllers turned on down a path, on a directory tree that
// stands in for the cgroup2 mount (plain files for cgroup.subtree_control:
// the kernel's side, appearing with each new cgroup, is the test's).
#include "cgroup_tree.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "lxmig/base/files.h"
#include "unit/temp_dir.h"

namespace lxmig::container {
namespace {

class CgroupTreeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  std::string root() const { return tmp_.path(); }
  void cgroup(const std::string& rel, const std::string& controllers) {
    const std::string d = rel.empty() ? root() : root() + "/" + rel;
    ::mkdir(d.c_str(), 0755);
    ASSERT_TRUE(writeFileAtomic(d + "/cgroup.subtree_control", controllers).ok()) << d;
  }
  std::string controllers(const std::string& rel) {
    auto t = readFile(root() + "/" + rel + (rel.empty() ? "" : "/") + "cgroup.subtree_control");
    return t.ok() ? *t : "<missing>";
  }

 private:
  lxmig::testing::TempDir tmp_{"lxmig-cgroup-tree-test"};
};

TEST_F(CgroupTreeTest, TurnsTheControllerOnAtEachLevelThatLacksIt) {
  cgroup("", "cpu memory pids\n");  // the root has it: left alone
  cgroup("lxmig", "cpu\n");
  cgroup("lxmig/nodes", "");
  ASSERT_TRUE(enableControllerDown(root(), "lxmig/nodes", "memory").ok());
  EXPECT_EQ(controllers(""), "cpu memory pids\n");
  EXPECT_EQ(controllers("lxmig"), "+memory") << "written as the kernel takes it";
  EXPECT_EQ(controllers("lxmig/nodes"), "+memory");
}

TEST_F(CgroupTreeTest, NamesTheCgroupItCannotReadOrMake) {
  cgroup("", "memory\n");
  // A parent the kernel would have given a subtree_control, made plain.
  ASSERT_EQ(::mkdir((root() + "/lxmig").c_str(), 0755), 0);
  auto st = enableControllerDown(root(), "lxmig", "memory");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("the controllers of cgroup " + root() + "/lxmig"), std::string::npos) << st.message();
  // A word that only contains the controller's name is not it.
  cgroup("", "memory_x\n");
  cgroup("lxmig", "memory\n");
  ASSERT_TRUE(enableControllerDown(root(), "lxmig", "memory").ok());
  EXPECT_EQ(controllers(""), "+memory");
  EXPECT_EQ(controllers("lxmig"), "memory\n");
}

}  // namespace
}  // namespace lxmig::container
