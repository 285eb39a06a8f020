// Reading another process's resource limits where root lacks
// CAP_SYS_RESOURCE (container/rlimits.h): the /proc/PID/limits parser on
// literal text, and the seccomp supervisor on real processes.
#include "rlimits.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "lxmig/base/files.h"
#include "prerequisite.h"

namespace lxmig::container {
namespace {

constexpr const char* kLimits =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max file size             unlimited            unlimited            bytes     \n"
    "Max data size             unlimited            unlimited            bytes     \n"
    "Max stack size            8388608              unlimited            bytes     \n"
    "Max core file size        0                    unlimited            bytes     \n"
    "Max resident set          unlimited            unlimited            bytes     \n"
    "Max processes             95723                95723                processes \n"
    "Max open files            1024                 524288               files     \n"
    "Max locked memory         8388608              8388608              bytes     \n"
    "Max address space         unlimited            unlimited            bytes     \n"
    "Max file locks            unlimited            unlimited            locks     \n"
    "Max pending signals       95723                95723                signals   \n"
    "Max msgqueue size         819200               819200               bytes     \n"
    "Max nice priority         0                    0                    \n"
    "Max realtime priority     0                    0                    \n"
    "Max realtime timeout      unlimited            unlimited            us        \n";

TEST(ProcLimits, EveryResourceIsItsRow) {
  auto stack = parseProcLimits(kLimits, RLIMIT_STACK);
  ASSERT_TRUE(stack.ok()) << stack.status().toString();
  EXPECT_EQ(stack->rlim_cur, 8388608u);
  EXPECT_EQ(stack->rlim_max, RLIM_INFINITY);
  auto files = parseProcLimits(kLimits, RLIMIT_NOFILE);
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->rlim_cur, 1024u);
  EXPECT_EQ(files->rlim_max, 524288u);
  EXPECT_EQ(parseProcLimits(kLimits, RLIMIT_NICE)->rlim_max, 0u);
  EXPECT_EQ(parseProcLimits(kLimits, RLIMIT_RTTIME)->rlim_cur, RLIM_INFINITY);
}

TEST(ProcLimits, ShortOrStrangeTextIsAnError) {
  EXPECT_FALSE(parseProcLimits("", RLIMIT_CPU).ok());
  EXPECT_FALSE(parseProcLimits(kLimits, 16).ok());
  EXPECT_FALSE(parseProcLimits(kLimits, -1).ok());
  EXPECT_FALSE(parseProcLimits("Limit\nMax cpu time              lots                 0\n", RLIMIT_CPU).ok());
  EXPECT_FALSE(parseProcLimits("Limit\nNot a row\n", RLIMIT_CPU).ok());
}

// A process of another uid, its stack limit set to a value of its own; a
// child of the test (the filter stays with it) reads that limit with a raw
// prlimit64, as CRIU does. Without CAP_SYS_RESOURCE the kernel refuses the
// read; under withRlimitReads it succeeds with the right values.
TEST(RlimitReads, AnotherUidsLimitsAreReadUnderTheFilter) {
  LXMIG_REQUIRE(::geteuid() == 0, "root (to start a process of another uid)");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t other = ::fork();
  if (other == 0) {
    rlimit mine{123 << 12, 456 << 12};
    if (::setrlimit(RLIMIT_STACK, &mine) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(1);
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  pid_t reader = ::fork();
  if (reader == 0) {
    auto r = withRlimitReads([other] {
      rlimit got{};
      if (::syscall(SYS_prlimit64, other, RLIMIT_STACK, nullptr, &got) != 0) return 10 + errno;
      return got.rlim_cur == (123 << 12) && got.rlim_max == (456 << 12) ? 0 : 2;
    });
    ::_exit(r.ok() ? *r : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(reader, &status, 0), reader);
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1x: prlimit64 failed with errno x-10; 2: wrong values; 3: no filter";
}

}  // namespace
}  // namespace lxmig::container
