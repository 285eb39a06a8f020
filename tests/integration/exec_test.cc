// lxmig exec on a real two-node test bed, through the CLI: the command's
// output streams back and its exit code is lxmig's; -i passes stdin on; -t
// gives it a terminal that follows the caller's size, also when the local
// agent relays the session to the node that runs the container; the
// command ends at its --timeout, and when its caller goes away, with the
// processes it started.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::testing {
namespace {

using Clock = std::chrono::steady_clock;

class ExecTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(2); }
  static void TearDownTestSuite() { downAfterSuite(); }

  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Cli r = tb().lxmig({"--node", "n2", "run", "--name", kName, "--", "/bin/sh", "-c", "exec sleep 1000000"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  void TearDown() override {
    (void)tb().lxmig({"rm", kName});
    TestbedSuite::TearDown();
  }

  // The container's processes, one "PID COMMAND ARGS" line each.
  std::string processes() { return tb().lxmig({"exec", kName, "--", "ps", "-eo", "pid,args"}).out; }

  static constexpr const char* kName = "sh1";
};

TEST_F(ExecTest, StdinOnlyWithDashIAndJsonOutput) {
  // Without -i the command's stdin is empty; with it, ours.
  std::vector<std::string> argv =
      tb().lxmigArgv({"exec", "-i", kName, "--", "/bin/sh", "-c", "read x; echo \"got $x\""});
  CommandOptions o;
  o.stdinData = "a line\n";
  o.timeoutMs = 60000;
  auto in = runCommand(argv, o);
  ASSERT_TRUE(in.ok()) << in.status().message();
  EXPECT_EQ(in->exitCode, 0) << in->err;
  EXPECT_EQ(in->out, "got a line\n");
  argv.erase(std::find(argv.begin(), argv.end(), "-i"));
  auto none = runCommand(argv, o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->out, "got \n") << none->err;

  Cli j = tb().lxmig({"--json", "exec", kName, "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 4"});
  EXPECT_EQ(j.code, 4);
  auto doc = j.json();
  ASSERT_TRUE(doc.is_object()) << j.out;
  EXPECT_EQ(doc["exit_code"], 4);
  EXPECT_EQ(doc["stdout"], "out\n");
  EXPECT_EQ(doc["stderr"], "err\n");

  Cli bad = tb().lxmig({"--json", "exec", "-t", kName, "--", "true"});
  EXPECT_EQ(bad.code, 2) << bad.err;
}

TEST_F(ExecTest, ATimeoutKillsTheCommandAndWhatItStarted) {
  auto start = Clock::now();
  Cli e = tb().lxmig({"exec", "--timeout", "2", kName, "--", "/bin/sh", "-c", "echo started; sleep 1001 & sleep 1002"});
  auto took = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  EXPECT_EQ(e.code, 128 + SIGKILL) << e.err;
  EXPECT_EQ(e.out, "started\n");  // streamed before the end, not lost at it
  EXPECT_NE(e.err.find("killed after its timeout of 2 s"), std::string::npos) << e.err;
  EXPECT_LT(took, 30);
  std::string ps = processes();
  EXPECT_EQ(ps.find("sleep 1001"), std::string::npos) << ps;
  EXPECT_EQ(ps.find("sleep 1002"), std::string::npos) << ps;
}

TEST_F(ExecTest, ACallerThatGoesEndsTheCommand) {
  // Through n1's agent, which relays the session to n2.
  auto argv =
      tb().lxmigArgv(tb().through("n1", "n2", {"exec", kName, "--", "/bin/sh", "-c", "sleep 1003 & sleep 1004"}));
  auto cli = spawn(argv);
  ASSERT_TRUE(cli.ok()) << cli.status().message();
  auto until = Clock::now() + std::chrono::seconds(20);
  while (processes().find("sleep 1004") == std::string::npos && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_NE(processes().find("sleep 1004"), std::string::npos) << "the command never ran";
  ASSERT_TRUE(cli->signal(SIGTERM).ok());
  ASSERT_TRUE(cli->wait(10000).ok());
  std::string ps;
  until = Clock::now() + std::chrono::seconds(10);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ps = processes();
  } while ((ps.find("sleep 1003") != std::string::npos || ps.find("sleep 1004") != std::string::npos) &&
           Clock::now() < until);
  EXPECT_EQ(ps.find("sleep 1003"), std::string::npos) << ps;
  EXPECT_EQ(ps.find("sleep 1004"), std::string::npos) << ps;
}

TEST_F(ExecTest, ATerminalFollowsTheCallersSizeThroughARelay) {
  // lxmig itself on a terminal (a pty this test holds), talking to n1's
  // agent about a container of n2.
  int master = -1, slave = -1;
  struct winsize ws {};
  ws.ws_row = 33;
  ws.ws_col = 101;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  UniqueFd m(master), s(slave);
  auto argv = tb().lxmigArgv(
      tb().through("n1", "n2",
                   {"exec", "-t", kName, "--", "/bin/sh", "-c",
                    "tty; stty size; echo \"term=$TERM\"; echo ready; read x; stty size; echo \"got $x\"; exit 7"}));
  SpawnOptions so;
  so.stdinFd = so.stdoutFd = so.stderrFd = s.get();
  so.controllingTerminal = true;
  so.extraEnv = {"TERM=vt100"};
  auto cli = spawn(argv, so);
  ASSERT_TRUE(cli.ok()) << cli.status().message();
  s.reset();

  std::string seen;
  bool typed = false;
  auto until = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < until) {
    pollfd p{m.get(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(m.get(), buf, sizeof buf);
    if (n <= 0) break;  // EIO: lxmig and its terminal are gone
    seen.append(buf, static_cast<size_t>(n));
    if (!typed && seen.find("ready") != std::string::npos) {
      ws.ws_row = 40;
      ws.ws_col = 120;
      ASSERT_EQ(::ioctl(m.get(), TIOCSWINSZ, &ws), 0);  // lxmig hears SIGWINCH
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      ASSERT_EQ(::write(m.get(), "typed line\r", 11), 11);
      typed = true;
    }
  }
  auto rc = cli->wait(10000);
  ASSERT_TRUE(rc.ok()) << "lxmig did not end; it printed: " << seen;
  EXPECT_EQ(*rc, 7) << seen;
  EXPECT_NE(seen.find("/dev/pts/"), std::string::npos) << seen;
  EXPECT_NE(seen.find("33 101\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("term=vt100\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("40 120\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("got typed line\r\n"), std::string::npos) << seen;
}

}  // namespace
}  // namespace lxmig::testing
