// liblxmig-rlimits.so, preloaded into CRIU by lxmig-lxc's dump (rlimits.h):
// syscall(), prlimit64() and prlimit() as glibc's, except that a read of
// another process's limits the kernel refuses (EPERM: root without
// CAP_SYS_RESOURCE, a process of another uid) is answered from
// /proc/PID/limits, which root can read. CRIU's dump reads them with
// syscall(__NR_prlimit64, ...), its own with prlimit(). Sets, reads of the
// caller's own limits, every other error and every other system call reach
// the caller unchanged.
//
// It runs inside CRIU, linked against CRIU's own C library: it uses the C
// library's calls only, allocates nothing and throws nothing (built without
// exceptions, RTTI or a sanitizer runtime, libstdc++ linked in statically).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>

#include "proc_limits.h"

namespace {

// The C library's syscall(), found once when the shim is loaded (before
// CRIU runs; a function-local static would need libstdc++'s guards).
using SyscallFn = long (*)(long, ...);
SyscallFn realSyscall = nullptr;

__attribute__((constructor)) void findRealSyscall() {
  realSyscall = reinterpret_cast<SyscallFn>(::dlsym(RTLD_NEXT, "syscall"));
}

struct Limit64 {  // struct rlimit64
  uint64_t cur;
  uint64_t max;
};

// 0, or -1 when /proc/PID/limits cannot be read or lacks the row.
int readProcLimits(pid_t pid, int resource, Limit64* out) {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/limits", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  char text[4096];  // ~1.4 KiB in practice
  size_t n = 0;
  while (n < sizeof text) {
    const ssize_t r = ::read(fd, text + n, sizeof text - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  ::close(fd);
  lxmig::container::ProcLimit l;
  if (!lxmig::container::parseProcLimitsRow({text, n}, resource, &l)) return -1;
  out->cur = l.soft;
  out->max = l.hard;
  return 0;
}

int limits(pid_t pid, int resource, const Limit64* newLimit, Limit64* oldLimit) {
  if (!realSyscall) {
    errno = ENOSYS;
    return -1;
  }
  if (realSyscall(SYS_prlimit64, pid, resource, newLimit, oldLimit) == 0) return 0;
  const int err = errno;
  if (err == EPERM && newLimit == nullptr && oldLimit != nullptr && pid > 0 && pid != ::getpid() &&
      readProcLimits(pid, resource, oldLimit) == 0)
    return 0;
  errno = err;
  return -1;
}

}  // namespace

extern "C" {
// As glibc's: six arguments are read whatever the call takes.
__attribute__((visibility("default"))) long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_prlimit64)
    return limits(static_cast<pid_t>(a[0]), static_cast<int>(a[1]), reinterpret_cast<const Limit64*>(a[2]),
                  reinterpret_cast<Limit64*>(a[3]));
  if (!realSyscall) {
    errno = ENOSYS;
    return -1;
  }
  return realSyscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
__attribute__((visibility("default"))) int prlimit64(pid_t pid, int resource, const Limit64* newLimit,
                                                     Limit64* oldLimit) {
  return limits(pid, resource, newLimit, oldLimit);
}
__attribute__((visibility("default"))) int prlimit(pid_t pid, int resource, const Limit64* newLimit,
                                                   Limit64* oldLimit) {
  return limits(pid, resource, newLimit, oldLimit);
}
}
