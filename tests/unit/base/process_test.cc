#include "lxmig/base/process.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace lxmig {
namespace {

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto r = runCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(ProcessTest, FeedsStdinAndEnv) {
  CommandOptions o;
  o.stdinData = "abc";
  o.extraEnv = {"LXMIG_X=42"};
  auto r = runCommand({"sh", "-c", "cat; echo $LXMIG_X"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "abc42\n");
}

TEST(ProcessTest, TimeoutKills) {
  CommandOptions o;
  o.timeoutMs = 200;
  auto r = runCommand({"sleep", "5"}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
}

TEST(ProcessTest, MissingBinaryExits127) {
  auto r = runCommand({"/nonexistent/lxmig-binary"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exitCode, 127);
}

TEST(ProcessTest, ChildIsKilledOnDestruction) {
  pid_t pid;
  {
    auto c = spawn({"sleep", "30"});
    ASSERT_TRUE(c.ok());
    pid = c->pid();
    EXPECT_EQ(::kill(pid, 0), 0);
  }
  EXPECT_NE(::kill(pid, 0), 0) << "child must be reaped";
}

}  // namespace
}  // namespace lxmig
