// Open files a container's processes hold that cannot move, found before
// anything is touched so that a migration is refused with the reason
// (issue 20: refused, never a deadlock or a failure after the freeze):
// - a lock (flock, POSIX, OFD) on a file in one of its bind mounts: the
//   target node sees a bind's source as the very same file (shared
//   storage; every directory of the test bed), so CRIU's restore there
//   would wait for the lock the frozen source still holds;
// - a POSIX message queue (mq_open): CRIU 4.2.1 cannot dump one ("Can't
//   lookup mount");
// - what tests/conformance found CRIU 4.2.1 cannot dump, or restores
//   differently (docs/conformance.md): io_uring and userfaultfd instances;
//   an eventfd in semaphore mode (restored as a counter); an epoll entry
//   with EPOLLONESHOT that fired (restored armed for EPOLLERR|EPOLLHUP);
//   events queued unread in an inotify or fanotify instance (not dumped);
//   an armed CLOCK_REALTIME timerfd (never fires after the restore); a
//   process waiting for a file lock (it got the lock while the holder
//   still held it after the restore); a stopped or traced process (CRIU's
//   ptrace attach waits for good on a stopped task in a frozen cgroup);
//   a region locked with mlock2(MLOCK_ONFAULT) that is not wholly resident
//   (CRIU maps it MAP_LOCKED: it comes back filled and locked whole); a
//   process with a System V semaphore undo list in an IPC namespace that
//   holds semaphore sets (SEM_UNDO adjustments cannot be read, so CRIU
//   drops them: its exit would undo nothing).
//
//   auto lines = container::locksInBinds(lxc.pids(name).value(), spec.binds);
//   // "`/shared/db.lock` (bind of /srv/shared) is locked by pid 12 'postgres' (FLOCK WRITE): ..."
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/container/lxc_host.h"

namespace lxmig::container {

// One line per lock of `pids` (host pids of the container's processes) on a
// file under a bind's mount point, naming the file, the bind, the process
// and the lock; a lock two processes share (an inherited fd) once.
std::vector<std::string> locksInBinds(const std::vector<pid_t>& pids, const std::vector<Bind>& binds);
// One line per POSIX message queue open in `pids`, naming queue and process.
std::vector<std::string> messageQueues(const std::vector<pid_t>& pids);
// One line per other open file of `pids` listed above, naming the file
// descriptor, the process and what CRIU would do to it; and per process
// of `pids` waiting for a file lock, stopped or maybe holding semaphore
// adjustments.
std::vector<std::string> unmovableFiles(const std::vector<pid_t>& pids);

// A mapping locked on fault (smaps VmFlags "lf") with pages not resident.
struct LockOnFaultGap {
  uint64_t start = 0, end = 0;     // addresses
  uint64_t rssKb = 0, sizeKb = 0;  // resident of all
  bool operator==(const LockOnFaultGap&) const = default;
};
// The mappings of a /proc/PID/smaps text that are locked on fault and not
// wholly resident (Rss below Size), in order. Pure: entries that do not
// parse are skipped, never guessed.
std::vector<LockOnFaultGap> lockOnFaultGaps(std::string_view smaps);

}  // namespace lxmig::container
