// A container's /dev kept out of CRIU's images (kept_tmpfs.h).
//
// liblxc's autodev mounts a small tmpfs at /dev holding a fixed tree: seven
// device nodes, the fd links, mount points for pts, shm and mqueue, and
// `.lxc-boot-id` (bound at /proc/sys/kernel/random/boot_id: the container's
// own boot id). CRIU tars it at the dump and untars it at the restore (~20
// ms each way here). When the container's /dev is still exactly that tree,
// nothing else in the tmpfs (not even under the mounts on it), the target
// builds the same tree with the container's boot id before the freeze, the
// dump names /dev external and the restore binds the prepared one there;
// CRIU restores the mounts on it (pts, shm, mqueue, ptmx, the boot id's
// bind) as before. The tree the target builds passes the same check, so
// the next move qualifies again.
//
//   source, at PREPARE and again frozen: *devProblem(init, &bootId) == ""
//   target, at PREPARE: LXMIG_ASSIGN_OR_RETURN(auto dev, prepareDev(dir, bootId));
//   dump: --external mnt[/dev]:lxmig-dev
//   restore: --external mnt[lxmig-dev]:dev->path()
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "lxmig/base/status.h"
#include "lxmig/container/kept_tmpfs.h"

namespace lxmig::container {

// CRIU's key for the external /dev, in the dump and the restore.
inline constexpr const char* kDevKey = "lxmig-dev";

// Why /dev in the mount table `mountinfo` (a /proc/PID/mountinfo) is not
// liblxc's autodev tmpfs; "" when its last mount is a whole tmpfs from
// "none", mounted rw,relatime with the options rw,size=492k,mode=755.
std::string devMountProblem(std::string_view mountinfo);

// Why the directory `dir` (an open fd of the tmpfs's root, `shown` names
// it) does not hold exactly liblxc's tree: the names, types, modes, owners,
// device numbers, link targets and single links of its entries, and the
// tmpfs's count of inodes and blocks (which sees what mounts hide). "" when
// it does; *bootId then holds `.lxc-boot-id`'s boot id (no newline).
Result<std::string> devTreeProblem(int dir, const std::string& shown, std::string* bootId);

// Both, for the container whose init is `init` (its /dev read beneath its
// root, no link followed).
Result<std::string> devProblem(pid_t init, std::string* bootId);

// A boot id as the kernel writes it: 36 characters, lower-case hex digits
// in groups of 8-4-4-4-12 joined by '-'.
bool isBootId(std::string_view id);

// Target: liblxc's tree in a tmpfs like the autodev one at `dir`, its
// `.lxc-boot-id` holding `bootId` (checked with isBootId).
Result<std::unique_ptr<PreparedTmpfs>> prepareDev(const std::string& dir, const std::string& bootId);

// The name of a prepared /dev's directory ends in this.
inline constexpr std::string_view kDevSuffix = ".dev";

}  // namespace lxmig::container
