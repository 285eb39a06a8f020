// Lets CRIU read the resource limits of processes of any uid on a host
// whose root lacks CAP_SYS_RESOURCE (root in a container with reduced
// capabilities, ../shared/PLATFORM.md). The kernel lets prlimit64() read
// another process's limits only when the uids match or the caller holds
// CAP_SYS_RESOURCE, so CRIU's dump of a daemon that dropped privileges
// (PostgreSQL, nginx workers) fails with "Can't get rlimit 0". The same
// values are in /proc/PID/limits, which root can read.
//
// CRIU's dump runs with liblxmig-rlimits.so preloaded (rlimit_shim.cc): its
// syscall() and prlimit64() answer a read the kernel refuses from
// /proc/PID/limits. A
// seccomp filter handing prlimit64 to a supervisor would do the same
// without a preload, but the kernel refuses PTRACE_O_SUSPEND_SECCOMP to a
// tracer that is itself under seccomp, and CRIU needs it for every process
// with a filter of its own (systemd's SystemCallFilter=, sandboxed daemons).
#pragma once

#include <sys/resource.h>

#include <string_view>

#include "lxmig/base/status.h"

namespace lxmig::container {

// Installed next to lxmig-lxc and lxmigd.
inline constexpr const char* kRlimitShim = "liblxmig-rlimits.so";

// One resource (RLIMIT_CPU ... RLIMIT_RTTIME) from the text of
// /proc/PID/limits; InvalidArgument when the text does not have it.
Result<rlimit> parseProcLimits(std::string_view text, int resource);

// The shim next to this program; FailedPrecondition when it is missing.
Result<std::string> rlimitShimPath();

// Preloads the shim into every program this process starts from now on
// (LD_PRELOAD); FailedPrecondition when it is not next to this program.
// Changes the environment: only for a single-threaded process that exits
// afterwards (lxmig-lxc's dump).
Status preloadRlimitShim();

}  // namespace lxmig::container
