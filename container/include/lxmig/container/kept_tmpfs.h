// A tmpfs of a container kept out of CRIU's images.
//
// CRIU saves every tmpfs mount of a container by running `tar --create
// --gzip` over it at the dump and untars it at the restore, inside the
// frozen window. Where the container's tmpfs is still exactly what lxmig or
// liblxc made (dev_shm.h: /dev/shm; dev_tree.h: /dev), the target mounts one
// like it before the freeze, the dump names the mount external and the
// restore binds the prepared one there. This header holds what both share:
// reading a mount's line of the container's mount table, and the target's
// prepared tmpfs.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lxmig/base/status.h"

namespace lxmig::container {

// What a standard tmpfs mount looks like in /proc/PID/mountinfo.
struct TmpfsLine {
  std::string_view at;            // its mount point, e.g. "/dev/shm"
  std::string_view source;        // the mount's source field ("tmpfs", "none")
  std::string_view mountOptions;  // e.g. "rw,nosuid,nodev,relatime"
  std::string_view superOptions;  // e.g. "rw" or "rw,size=492k,mode=755"
};

// Why the last mount at `want.at` in the mount table `mountinfo` (a
// /proc/PID/mountinfo) is not `want`; "" when it is a whole tmpfs ("/" its
// root) with exactly that source and those options. One line, values quoted.
std::string tmpfsMountProblem(std::string_view mountinfo, const TmpfsLine& want);

// A tmpfs mounted at a directory of the target's (made here, 0700; its
// absolute path of letters, digits, '/', '.', '_' and '-' only: it reaches
// CRIU through the criu wrapper's options, split at blanks), private, for a
// restore to bind into the container. The destructor detaches it and
// removes the directory: a restored container keeps its own bind of it.
class PreparedTmpfs {
 public:
  // `what` names the container's mount in errors ("/dev/shm").
  static Result<std::unique_ptr<PreparedTmpfs>> mount(const std::string& dir, const TmpfsLine& like,
                                                      unsigned long flags, std::string_view what);
  ~PreparedTmpfs();
  PreparedTmpfs(const PreparedTmpfs&) = delete;
  PreparedTmpfs& operator=(const PreparedTmpfs&) = delete;

  const std::string& path() const { return dir_; }

 private:
  explicit PreparedTmpfs(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Detaches a prepared tmpfs and removes its directory (also one an agent
// that died left behind). What is not there is fine.
void removePreparedTmpfs(const std::string& dir);

}  // namespace lxmig::container
