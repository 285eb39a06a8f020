// File locks that cannot move: a lock (flock, POSIX, OFD) a container's
// process holds on a file in one of its bind mounts. The target node sees a
// bind's source as the very same file (shared storage; every directory of
// the test bed), so CRIU's restore there would wait for the lock the frozen
// source still holds, until the restore's deadline. A migration refuses
// them before anything is touched (issue 20: never a deadlock).
//
//   auto lines = container::locksInBinds(lxc.pids(name).value(), spec.binds);
//   // "`/shared/db.lock` (bind of /srv/shared) is locked by pid 12 'postgres' (FLOCK WRITE): ..."
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "lxmig/container/lxc_host.h"

namespace lxmig::container {

// One line per lock of `pids` (host pids of the container's processes) on a
// file under a bind's mount point, naming the file, the bind, the process
// and the lock; a lock two processes share (an inherited fd) once.
std::vector<std::string> locksInBinds(const std::vector<pid_t>& pids, const std::vector<Bind>& binds);

}  // namespace lxmig::container
