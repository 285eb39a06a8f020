#include "lxmig/container/dev_shm.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"

namespace lxmig::container {
namespace {

constexpr const char* kLog = "dev-shm";
// What /proc/PID/mountinfo shows of lxc_host.cc's entry
// "tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0".
constexpr std::string_view kMountOptions = "rw,nosuid,nodev,relatime";
constexpr std::string_view kSuperOptions = "rw";

}  // namespace

std::string devShmMountProblem(std::string_view mountinfo) {
  // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAG...] - FSTYPE SOURCE SUPER
  std::vector<std::string> last;
  for (const auto& line : split(mountinfo, '\n')) {
    auto f = split(line, ' ', /*skipEmpty=*/false);  // exact fields, as the kernel writes them
    if (f.size() >= 5 && f[4] == "/dev/shm") last = std::move(f);
  }
  if (last.empty()) return "/dev/shm is not a mount point";
  if (std::find(last.begin(), last.end(), "") != last.end()) return "/dev/shm's line of mountinfo is malformed";
  size_t dash = 6;
  while (dash < last.size() && last[dash] != "-") ++dash;
  if (dash + 4 != last.size()) return "/dev/shm's line of mountinfo has no file system";
  if (last[dash + 1] != "tmpfs") return "/dev/shm is a " + quote(last[dash + 1], 32) + " mount, not a tmpfs";
  if (last[3] != "/") return "/dev/shm is a bind of " + quote(last[3], 64);
  if (last[5] != kMountOptions) return "/dev/shm is mounted with " + quote(last[5], 64);
  if (last[dash + 3] != kSuperOptions) return "/dev/shm's tmpfs has the options " + quote(last[dash + 3], 64);
  return "";
}

Result<UniqueFd> openDevShmDir(pid_t init, std::string* shown) {
  if (init == 0) {
    *shown = "/dev/shm";
    UniqueFd dir(::open("/dev/shm", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return Status::fromErrno("open", *shown);
    return dir;
  }
  const std::string rootPath = "/proc/" + std::to_string(init) + "/root";
  UniqueFd root(::open(rootPath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::fromErrno("open", rootPath);
  *shown = rootPath + "/dev/shm";
  return openDirBeneath(root.get(), "dev/shm", *shown);
}

Result<std::string> devShmProblem(pid_t init) {
  if (init <= 0) return invalidArgument("no init process");
  const std::string proc = "/proc/" + std::to_string(init);
  LXMIG_ASSIGN_OR_RETURN(std::string mountinfo, readFileHead(proc + "/mountinfo", 4 << 20));
  if (std::string why = devShmMountProblem(mountinfo); !why.empty()) return why;
  std::string shown;
  auto dir = openDevShmDir(init, &shown);
  if (!dir.ok()) return "/dev/shm cannot be read: " + dir.status().message();
  LXMIG_ASSIGN_OR_RETURN(auto entries, listDirAt(dir->get(), shown));
  if (!entries.empty()) return "/dev/shm holds " + std::to_string(entries.size()) + " file(s)";
  return std::string();
}

Result<std::unique_ptr<PreparedDevShm>> PreparedDevShm::create(const std::string& dir) {
  // The path reaches CRIU through the criu wrapper's options, split at
  // blanks by its shell: a path of other characters is not prepared.
  if (dir.empty() || dir[0] != '/' ||
      dir.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") != std::string::npos)
    return invalidArgument("a prepared /dev/shm needs a path of letters, digits, '/', '.', '_' and '-', not " +
                           quote(dir));
  if (::mkdir(dir.c_str(), 0700) != 0) return Status::fromErrno("mkdir", dir);
  std::unique_ptr<PreparedDevShm> shm(new PreparedDevShm(dir));
  // The restore's bind takes the propagation CRIU saved; this mount shares
  // nothing with the node's.
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, nullptr) != 0) {
    Status st = Status::fromErrno("mount tmpfs", dir);
    (void)::rmdir(dir.c_str());
    shm->dir_.clear();
    return st;
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) return Status::fromErrno("make private", dir);
  return shm;
}

PreparedDevShm::~PreparedDevShm() {
  if (!dir_.empty()) removePreparedDevShm(dir_);
}

void removePreparedDevShm(const std::string& dir) {
  if (::umount2(dir.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT)
    LXMIG_LOG(kWarn, kLog) << Status::fromErrno("umount", dir).toString();
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
    LXMIG_LOG(kWarn, kLog) << Status::fromErrno("rmdir", dir).toString();
}

}  // namespace lxmig::container
