// Lets CRIU read the resource limits of processes of any uid on a host
// whose root lacks CAP_SYS_RESOURCE (root in a container with reduced
// capabilities, ../shared/PLATFORM.md). The kernel lets prlimit64() read
// another process's limits only when the uids match or the caller holds
// CAP_SYS_RESOURCE, so CRIU's dump of a daemon that dropped privileges
// (PostgreSQL, nginx workers) fails with "Can't get rlimit 0". The same
// values are in /proc/PID/limits, which root can read.
//
// withRlimitReads(fn) runs fn on the calling thread under a seccomp filter
// that hands every prlimit64() of this thread and of the processes it
// starts (CRIU, through liblxc) to a supervisor thread: a read of another
// process's limits is answered with the kernel's own answer when the
// supervisor may ask, else from /proc/PID/limits, written into the caller's
// buffer; anything else goes on to the kernel untouched. The filter cannot
// be removed again: call this only in a process that exits afterwards (the
// lxmig-lxc helper's dump), never in the agent.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <functional>
#include <string_view>

#include "lxmig/base/status.h"

namespace lxmig::container {

// One resource (RLIMIT_CPU ... RLIMIT_RTTIME) from the text of
// /proc/PID/limits; InvalidArgument when the text does not have it.
Result<rlimit> parseProcLimits(std::string_view text, int resource);

// Runs fn with the filter in place; its result is fn's. FailedPrecondition
// when the filter cannot be installed (no seccomp user notification here).
Result<int> withRlimitReads(const std::function<int()>& fn);

}  // namespace lxmig::container
