// A container's /dev/shm kept out of CRIU's images (kept_tmpfs.h).
//
// CRIU tars an empty tmpfs in ~18 ms at the dump and untars it in as much at
// the restore here, inside the frozen window. Every container lxmig
// defines gets the same /dev/shm (lxc_host.cc: a tmpfs, rw,nosuid,nodev).
// When the container's is still that mount at the freeze, and empty or
// holding only plain files, the target mounts an empty tmpfs like it
// before the freeze, the source sends the files into it, the dump names
// /dev/shm external and the restore binds the prepared one there.
//
//   source, at PREPARE and again frozen:
//     *devShmProblem(init, DevShmHolds::kPlainFiles, &files) == ""
//   target, at PREPARE: LXMIG_ASSIGN_OR_RETURN(auto shm, prepareDevShm(dir));
//   dump: --external mnt[/dev/shm]:lxmig-shm
//   restore: --external mnt[lxmig-shm]:shm->path()
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"
#include "lxmig/container/kept_tmpfs.h"

namespace lxmig::container {

// CRIU's key for the external /dev/shm, in the dump and the restore.
inline constexpr const char* kDevShmKey = "lxmig-shm";

// The /dev/shm of the container whose init is `init`: its root through the
// init (a magic link, the one thing followed), then dev/shm beneath it
// without following any link. `init` 0: the host's. *shown names it.
Result<UniqueFd> openDevShmDir(pid_t init, std::string* shown);

// Why the /dev/shm of the mount table `mountinfo` (a /proc/PID/mountinfo)
// is not lxmig's standard one; "" when the last mount at /dev/shm is a
// whole tmpfs ("/" its root) with the options rw,nosuid,nodev,relatime and
// the tmpfs defaults (super options "rw": no size, inode count, mode or
// owner of its own).
std::string devShmMountProblem(std::string_view mountinfo);

// What a container's /dev/shm holds that the agent carries itself.
struct DevShmFiles {
  uint32_t files = 0;
  uint64_t bytes = 0;
};
// At most this many files are carried; more go with CRIU's images.
inline constexpr uint32_t kDevShmMaxFiles = 4096;

// What a /dev/shm kept out of the images may hold: nothing (a target that
// cannot take files), or regular files of one name each directly in it
// (POSIX shared memory: PostgreSQL's dynamic shared memory, shm_open(3)),
// at most kDevShmMaxFiles. The agent sends those to the target's tmpfs
// itself (transfer area DEV_SHM) while CRIU dumps: CRIU would tar and gzip
// them inside the frozen window (~40 ms for PostgreSQL's two, and as much
// again to unpack them at the restore).
enum class DevShmHolds { kNothing, kPlainFiles };

// The same for the container whose init is `init`, whose /dev/shm must
// also hold no more than `holds` allows (read beneath its root, no link
// followed); *files counts what it holds.
Result<std::string> devShmProblem(pid_t init, DevShmHolds holds, DevShmFiles* files);

// Target: an empty tmpfs like the standard one at `dir` (kept_tmpfs.h).
Result<std::unique_ptr<PreparedTmpfs>> prepareDevShm(const std::string& dir);

// The name of a prepared /dev/shm's directory ends in this (an agent's
// start removes what one that died left behind).
inline constexpr std::string_view kDevShmSuffix = ".devshm";

}  // namespace lxmig::container
