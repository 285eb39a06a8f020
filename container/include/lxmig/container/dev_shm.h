// A container's /dev/shm kept out of CRIU's images.
//
// CRIU saves every tmpfs mount of a container by running `tar --create
// --gzip` over it at the dump and untars it at the restore (~18 ms each way
// here for an empty one), inside the frozen window. Every container lxmig
// defines gets the same /dev/shm (lxc_host.cc: a tmpfs, rw,nosuid,nodev).
// When the container's is still that mount and empty at the freeze, the
// target mounts an empty tmpfs like it before the freeze, the dump names
// /dev/shm external and the restore binds the prepared one there.
//
//   source, at PREPARE and again frozen: *devShmProblem(init) == ""
//   target, at PREPARE: LXMIG_ASSIGN_OR_RETURN(auto shm, PreparedDevShm::create(dir));
//   dump: --external mnt[/dev/shm]:lxmig-shm
//   restore: --external mnt[lxmig-shm]:shm->path()
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

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

// The same for the container whose init is `init`, whose /dev/shm must
// also be empty (read beneath its root, no link followed).
Result<std::string> devShmProblem(pid_t init);

// An empty tmpfs mounted at a directory of the target's (made here, 0700;
// its absolute path of letters, digits, '/', '.', '_' and '-' only),
// private, with the standard mount's options, for a restore to bind at the
// container's /dev/shm. The destructor detaches it and removes the
// directory: a restored container keeps its own bind of it.
class PreparedDevShm {
 public:
  static Result<std::unique_ptr<PreparedDevShm>> create(const std::string& dir);
  ~PreparedDevShm();
  PreparedDevShm(const PreparedDevShm&) = delete;
  PreparedDevShm& operator=(const PreparedDevShm&) = delete;

  const std::string& path() const { return dir_; }

 private:
  explicit PreparedDevShm(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Detaches a prepared /dev/shm and removes its directory (also one an
// agent that died left behind, PreparedDevShm's name ends in
// kDevShmSuffix). What is not there is fine.
inline constexpr std::string_view kDevShmSuffix = ".devshm";
void removePreparedDevShm(const std::string& dir);

}  // namespace lxmig::container
