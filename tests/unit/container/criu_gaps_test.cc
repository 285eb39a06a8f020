// container/criu_gaps.h: the file's grammar, and the state read from and
// applied to real processes of this test (timer slack, a System V segment
// removed while attached, in an IPC namespace of the child's own).
#include "lxmig/container/criu_gaps.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>

#include "prerequisite.h"

namespace lxmig::container {
namespace {

TEST(CriuGaps, FormatParsesBack) {
  CriuGaps g;
  g.timerSlackNs[7] = 1000;
  g.timerSlackNs[1234] = 3600000;
  g.removedShm = {0, 32769};
  auto back = parseCriuGaps(formatCriuGaps(g));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(*back, g);
  EXPECT_TRUE(parseCriuGaps("").ok());
}

TEST(CriuGaps, OffTheGrammarIsRefusedInOneLine) {
  for (const char* bad :
       {"timerslack 0 5\n", "timerslack 5 0\n", "timerslack 9999999 5\n", "timerslack 5 -1\n", "shm-removed -1\n",
        "shm-removed 4294967296\n", "timerslack 5\n", "rm -rf /\n", "timerslack 5 10 11\n", "shm-removed 1\nhello\n"}) {
    auto r = parseCriuGaps(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("lxmig-gaps line"), std::string::npos) << r.status().message();
  }
}

// A child in an IPC namespace of its own that runs `setup`, reports ready
// and waits to be killed.
pid_t child(const std::function<void()>& setup, int ready[2]) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWIPC) != 0) ::_exit(1);
    setup();
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  char c;
  (void)!::read(ready[0], &c, 1);
  return pid;
}

void reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

TEST(CriuGaps, ReadFromAndAppliedToProcesses) {
  LXMIG_REQUIRE(::geteuid() == 0, "root (an IPC namespace, another process's timer slack)");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t a = child(
      [] {
        ::prctl(PR_SET_TIMERSLACK, 123456UL, 0, 0, 0);
        int id = ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        ::shmat(id, nullptr, 0);
        ::shmctl(id, IPC_RMID, nullptr);
        ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);  // a second one, kept
      },
      ready);
  auto gaps = readCriuGaps({a}, a);
  reap(a);
  ASSERT_TRUE(gaps.ok()) << gaps.status().toString();
  ASSERT_EQ(gaps->timerSlackNs.size(), 1u);
  EXPECT_EQ(gaps->timerSlackNs.begin()->second, 123456u);
  ASSERT_EQ(gaps->removedShm.size(), 1u);

  // Another process, same inner tid and ids as a restore gives them.
  pid_t b = child(
      [] {
        int id = ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        ::shmat(id, nullptr, 0);
        ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
      },
      ready);
  CriuGaps want;
  want.timerSlackNs[static_cast<uint32_t>(b)] = 123456;
  want.removedShm = gaps->removedShm;
  Status st = applyCriuGaps(want, {b}, b);
  auto after = readCriuGaps({b}, b);
  reap(b);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(st.ok()) << st.toString();
  ASSERT_TRUE(after.ok()) << after.status().toString();
  EXPECT_EQ(*after, want);
}

}  // namespace
}  // namespace lxmig::container
