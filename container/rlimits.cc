#include "rlimits.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "lxmig/base/files.h"
#include "proc_limits.h"

namespace lxmig::container {

Result<rlimit> parseProcLimits(std::string_view text, int resource) {
  ProcLimit l;
  if (!parseProcLimitsRow(text, resource, &l))
    return invalidArgument("no limits row for resource " + std::to_string(resource) + " in /proc/PID/limits");
  return rlimit{static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
}

Result<std::string> rlimitShimPath() {
  LXMIG_ASSIGN_OR_RETURN(const std::string dir, programDir());
  const std::string path = dir + "/" + kRlimitShim;
  if (!pathExists(path)) return failedPrecondition(path + " is missing (install it next to lxmigd and lxmig-lxc)");
  return path;
}

Status preloadRlimitShim() {
  LXMIG_ASSIGN_OR_RETURN(std::string path, rlimitShimPath());
  if (::setenv("LD_PRELOAD", path.c_str(), 1) != 0) return Status::fromErrno("setenv", "LD_PRELOAD");
  return okStatus();
}

}  // namespace lxmig::container
