#include "lxmig/base/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"

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

// What a spawned child gets: its own session, the caller's environment
// plus extraEnv, SIGPIPE at its default and no signal blocked, no fd above
// 2, stderr appended to the path given.
TEST(ProcessTest, SpawnGivesAFreshSessionAndNothingOfTheCallers) {
  char tmpl[] = "/tmp/lxmig-spawn-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, err = dir + "/err";
  ASSERT_TRUE(writeFileAtomic(err, "before\n").ok());
  UniqueFd held(::open("/dev/null", O_RDONLY));  // not close-on-exec
  ASSERT_TRUE(held);
  sigset_t pipe, old;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &pipe, &old), 0);
  SpawnOptions o;
  o.stderrPath = err;
  o.extraEnv = {"LXMIG_SPAWN_X=7"};
  auto c = spawn({"sh", "-c",
                  "echo sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$ x=$LXMIG_SPAWN_X "
                  "blocked=$(grep SigBlk /proc/$$/status | cut -f2) fd=$(ls /proc/$$/fd | sort -n | tail -1) >&2"},
                 o);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(c.ok()) << c.status().toString();
  const std::string pid = std::to_string(c->pid());
  auto rc = c->wait();
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 0);
  auto text = readFile(err);
  ASSERT_TRUE(text.ok());
  // `ls` sees its own directory fd (3) and nothing above it.
  EXPECT_EQ(*text, "before\nsid=" + pid + " pid=" + pid + " x=7 blocked=0000000000000000 fd=3\n");
  (void)removeTree(dir);
}

TEST(ProcessTest, SpawnOfWhatCannotRunIsAnError) {
  auto c = spawn({"/nonexistent/lxmig-binary"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/lxmig-binary"), std::string::npos) << c.status().toString();
  SpawnOptions o;
  o.stderrPath = "/nonexistent/dir/err";
  EXPECT_FALSE(spawn({"true"}, o).ok());
}

}  // namespace
}  // namespace lxmig
