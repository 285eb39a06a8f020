// Reading another process's resource limits where root lacks
// CAP_SYS_RESOURCE (container/rlimits.h): the /proc/PID/limits parser on
// literal text, and the shim CRIU runs with on real processes.
#include "rlimits.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
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

// Drops CAP_SYS_RESOURCE from this process's effective set, as on a node
// whose root lacks it: the kernel then refuses reads across uids.
bool dropSysResource() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &hdr, data) != 0) return false;
  data[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
  return ::syscall(SYS_capset, &hdr, data) == 0;
}

// The shim as CRIU gets it (built next to lxmig-lxc): a process of another
// uid, its stack limit set to a value of its own; a child without
// CAP_SYS_RESOURCE reads that limit through the shim's prlimit64. The
// kernel alone refuses; the shim (its prlimit64 and its syscall, which
// CRIU uses) answers with the right values, and leaves
// sets and other errors as the kernel says.
TEST(RlimitShim, AnotherUidsLimitsAreReadThroughTheShim) {
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
    if (!dropSysResource()) ::_exit(3);
    rlimit got{};
    if (::syscall(SYS_prlimit64, other, RLIMIT_STACK, nullptr, &got) == 0 || errno != EPERM) ::_exit(4);
    void* shim = ::dlopen(LXMIG_RLIMIT_SHIM, RTLD_NOW | RTLD_LOCAL);
    if (!shim) ::_exit(5);
    using Prlimit = int (*)(pid_t, int, const rlimit*, rlimit*);
    auto viaShim = reinterpret_cast<Prlimit>(::dlsym(shim, "prlimit64"));
    if (!viaShim) ::_exit(6);
    if (viaShim(other, RLIMIT_STACK, nullptr, &got) != 0) ::_exit(10 + errno);
    if (got.rlim_cur != (123 << 12) || got.rlim_max != (456 << 12)) ::_exit(2);
    // CRIU's dump asks through syscall(); other calls pass through it.
    using Syscall = long (*)(long, ...);
    auto viaSyscall = reinterpret_cast<Syscall>(::dlsym(shim, "syscall"));
    if (!viaSyscall) ::_exit(6);
    got = {};
    if (viaSyscall(SYS_prlimit64, other, RLIMIT_STACK, nullptr, &got) != 0) ::_exit(40 + errno);
    if (got.rlim_cur != (123 << 12) || got.rlim_max != (456 << 12)) ::_exit(2);
    if (viaSyscall(SYS_getpid) != ::getpid()) ::_exit(39);
    rlimit lower{1 << 12, 1 << 12};
    if (viaShim(other, RLIMIT_STACK, &lower, nullptr) == 0 || errno != EPERM) ::_exit(7);
    if (viaShim(::getpid(), RLIMIT_NOFILE, nullptr, &got) != 0) ::_exit(8);
    if (viaShim(other, 99, nullptr, &got) == 0) ::_exit(9);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(reader, &status, 0), reader);
  ::kill(other, SIGKILL);
  ::waitpid(other, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1x/4x: the shim's prlimit64/syscall failed with errno x-10/x-40; "
                                       "2: wrong values; 3: capset failed; 39: syscall() did not pass through; "
                                       "4: the kernel did not refuse; 5/6: no shim; 7: a set went through; "
                                       "8: own limits; 9: a bad resource";
}

}  // namespace
}  // namespace lxmig::container
