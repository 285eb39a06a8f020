#include "lxmig/container/kept_tmpfs.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"

namespace lxmig::container {
namespace {

constexpr const char* kLog = "kept-tmpfs";

}  // namespace

std::string tmpfsMountProblem(std::string_view mountinfo, const TmpfsLine& want) {
  const std::string at(want.at);
  // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAG...] - FSTYPE SOURCE SUPER
  std::vector<std::string> last;
  size_t mounts = 0;
  for (const auto& line : split(mountinfo, '\n')) {
    auto f = split(line, ' ', /*skipEmpty=*/false);  // exact fields, as the kernel writes them
    if (f.size() >= 5 && f[4] == at) {
      last = std::move(f);
      ++mounts;
    }
  }
  if (last.empty()) return at + " is not a mount point";
  // One over another hides the first, which CRIU would carry.
  if (mounts > 1) return at + " is mounted " + std::to_string(mounts) + " times";
  if (std::find(last.begin(), last.end(), "") != last.end()) return at + "'s line of mountinfo is malformed";
  size_t dash = 6;
  while (dash < last.size() && last[dash] != "-") ++dash;
  if (dash + 4 != last.size()) return at + "'s line of mountinfo has no file system";
  if (last[dash + 1] != "tmpfs") return at + " is a " + quote(last[dash + 1], 32) + " mount, not a tmpfs";
  if (last[3] != "/") return at + " is a bind of " + quote(last[3], 64);
  if (last[5] != want.mountOptions) return at + " is mounted with " + quote(last[5], 64);
  if (last[dash + 2] != want.source) return at + "'s tmpfs has the source " + quote(last[dash + 2], 64);
  if (last[dash + 3] != want.superOptions) return at + "'s tmpfs has the options " + quote(last[dash + 3], 64);
  return "";
}

Result<std::unique_ptr<PreparedTmpfs>> PreparedTmpfs::mount(const std::string& dir, const TmpfsLine& like,
                                                            unsigned long flags, std::string_view what) {
  const std::string name(what);
  if (dir.empty() || dir[0] != '/' ||
      dir.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") != std::string::npos)
    return invalidArgument("a prepared " + name + " needs a path of letters, digits, '/', '.', '_' and '-', not " +
                           quote(dir));
  // The super options but the leading "rw" are the mount's data: what the
  // kernel shows again for this mount.
  std::string data(like.superOptions);
  if (data == "rw") data.clear();
  else if (startsWith(data, "rw,")) data = data.substr(3);
  else return invalidArgument("a prepared " + name + " is mounted read-write, not " + quote(data, 64));
  if (::mkdir(dir.c_str(), 0700) != 0) return Status::fromErrno("mkdir", dir);
  std::unique_ptr<PreparedTmpfs> fs(new PreparedTmpfs(dir));
  const std::string source(like.source);
  if (::mount(source.c_str(), dir.c_str(), "tmpfs", flags, data.empty() ? nullptr : data.c_str()) != 0) {
    Status st = Status::fromErrno("mount tmpfs for " + name, dir);
    (void)::rmdir(dir.c_str());
    fs->dir_.clear();
    return st;
  }
  // The restore's bind takes the propagation CRIU saved; this mount shares
  // nothing with the node's.
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) return Status::fromErrno("make private", dir);
  return fs;
}

PreparedTmpfs::~PreparedTmpfs() {
  if (!dir_.empty()) removePreparedTmpfs(dir_);
}

void removePreparedTmpfs(const std::string& dir) {
  if (::umount2(dir.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT)
    LXMIG_LOG(kWarn, kLog) << Status::fromErrno("umount", dir).toString();
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
    LXMIG_LOG(kWarn, kLog) << Status::fromErrno("rmdir", dir).toString();
}

}  // namespace lxmig::container
