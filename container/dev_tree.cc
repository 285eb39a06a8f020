#include "lxmig/container/dev_tree.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"

namespace lxmig::container {
namespace {

// What /proc/PID/mountinfo shows of liblxc 5.0.2's autodev mount.
constexpr TmpfsLine kStandard = {"/dev", "none", "rw,relatime", "rw,size=492k,mode=755"};

// liblxc's tree, as a container of lxc_host.cc's configuration sees it.
struct Entry {
  std::string_view name;
  mode_t type;  // S_IFREG, S_IFLNK, S_IFCHR or S_IFDIR
  mode_t perm;
  unsigned major = 0, minor = 0;
  std::string_view target = {};  // of a link
};
constexpr const char* kBootIdFile = ".lxc-boot-id";
constexpr Entry kTree[] = {
    {kBootIdFile, S_IFREG, 0444},
    {"fd", S_IFLNK, 0777, 0, 0, "/proc/self/fd"},
    {"stdin", S_IFLNK, 0777, 0, 0, "/proc/self/fd/0"},
    {"stdout", S_IFLNK, 0777, 0, 0, "/proc/self/fd/1"},
    {"stderr", S_IFLNK, 0777, 0, 0, "/proc/self/fd/2"},
    {"full", S_IFCHR, 0666, 1, 7},
    {"null", S_IFCHR, 0666, 1, 3},
    {"random", S_IFCHR, 0666, 1, 8},
    {"urandom", S_IFCHR, 0666, 1, 9},
    {"zero", S_IFCHR, 0666, 1, 5},
    {"tty", S_IFCHR, 0666, 5, 0},
    // The mount points: liblxc binds devpts's ptmx over this one, and mounts
    // devpts, a tmpfs and mqueue on the directories; what shows there is
    // what is mounted (its modes are not the tree's, and not checked).
    {"ptmx", S_IFCHR, 0666, 5, 2},
    {"pts", S_IFDIR, 0755},
    {"shm", S_IFDIR, 0755},
    {"mqueue", S_IFDIR, 0755},
};
// The mounts on the tree, each present: what they hide stays hidden.
constexpr std::string_view kMountedOn[] = {"/dev/pts", "/dev/ptmx", "/dev/shm", "/dev/mqueue"};
// The tmpfs's own count: the root and one per entry (a hard link, a file
// under a mount or an extended attribute counts too); and one block, the
// boot id's (the links are short enough to live in their inodes).
constexpr uint64_t kInodes = 1 + std::size(kTree);
constexpr uint64_t kBlocks = 1;

const Entry* entryNamed(std::string_view name) {
  for (const Entry& e : kTree)
    if (e.name == name) return &e;
  return nullptr;
}

std::string octal(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// Why the entry `e` at `st` differs from the tree's; "" when it does not.
std::string entryProblem(int dir, const Entry& e, const struct stat& st, const std::string& shown) {
  const std::string what = shown + "/" + std::string(e.name);
  if ((st.st_mode & S_IFMT) != e.type) return what + " is not of liblxc's type";
  if (st.st_uid != 0 || st.st_gid != 0)
    return what + " belongs to " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ", not 0:0";
  if (e.type == S_IFDIR) return "";
  if (st.st_nlink != 1) return what + " has " + std::to_string(st.st_nlink) + " links";
  if (e.type != S_IFLNK && (st.st_mode & 07777) != e.perm) return what + " has the mode " + octal(st.st_mode);
  if (e.type == S_IFCHR && (major(st.st_rdev) != e.major || minor(st.st_rdev) != e.minor))
    return what + " is the device " + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  if (e.type == S_IFLNK) {
    char target[64];
    const ssize_t n = ::readlinkat(dir, std::string(e.name).c_str(), target, sizeof target);
    if (n < 0 || std::string_view(target, static_cast<size_t>(n)) != e.target) return what + " links elsewhere";
  }
  return "";
}

// `.lxc-boot-id`'s content: a boot id and a newline.
Result<std::string> readBootId(int dir, const std::string& shown) {
  UniqueFd f(::openat(dir, kBootIdFile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!f) return Status::fromErrno("open", shown + "/" + kBootIdFile);
  char buf[64];
  ssize_t n;
  do n = ::read(f.get(), buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::fromErrno("read", shown + "/" + kBootIdFile);
  const std::string_view text(buf, static_cast<size_t>(n));
  if (text.size() != 37 || text.back() != '\n' || !isBootId(text.substr(0, 36))) return std::string();
  return std::string(text.substr(0, 36));
}

}  // namespace

bool isBootId(std::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = id[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string devMountProblem(std::string_view mountinfo) {
  if (std::string why = tmpfsMountProblem(mountinfo, kStandard); !why.empty()) return why;
  std::vector<bool> seen(std::size(kMountedOn), false);
  for (const auto& line : split(mountinfo, '\n')) {
    auto f = split(line, ' ', /*skipEmpty=*/false);
    if (f.size() < 10) continue;  // a whole line: ten fields at least
    for (size_t k = 0; k < std::size(kMountedOn); ++k) seen[k] = seen[k] || f[4] == kMountedOn[k];
  }
  for (size_t k = 0; k < std::size(kMountedOn); ++k)
    if (!seen[k]) return std::string(kMountedOn[k]) + " is not a mount point";
  return "";
}

Result<std::string> devTreeProblem(int dir, const std::string& shown, std::string* bootId) {
  struct statfs fs {};
  if (::fstatfs(dir, &fs) != 0) return Status::fromErrno("statfs", shown);
  if (fs.f_type != TMPFS_MAGIC) return shown + " is not a tmpfs";
  const uint64_t filesBefore = fs.f_files - fs.f_ffree;
  struct stat root {};
  if (::fstat(dir, &root) != 0) return Status::fromErrno("stat", shown);
  if ((root.st_mode & 07777) != 0755 || root.st_uid != 0 || root.st_gid != 0)
    return shown + " has the mode " + octal(root.st_mode) + " and the owner " + std::to_string(root.st_uid) + ":" +
           std::to_string(root.st_gid);
  LXMIG_ASSIGN_OR_RETURN(auto entries, listDirAt(dir, shown));
  if (entries.size() != std::size(kTree))
    return shown + " holds " + std::to_string(entries.size()) + " entries, liblxc's " +
           std::to_string(std::size(kTree));
  for (const auto& d : entries) {
    const Entry* e = entryNamed(d.name);
    if (!e) return shown + " holds " + quote(d.name, 64) + ", which liblxc does not make";
    struct stat st {};
    if (::fstatat(dir, d.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return Status::fromErrno("stat", shown + "/" + d.name);
    if (std::string why = entryProblem(dir, *e, st, shown); !why.empty()) return why;
  }
  // Counted before and after the listing: a file made meanwhile is in one
  // of the three.
  if (::fstatfs(dir, &fs) != 0) return Status::fromErrno("statfs", shown);
  const uint64_t inodes = fs.f_files - fs.f_ffree, blocks = fs.f_blocks - fs.f_bfree;
  if (inodes != kInodes || filesBefore != kInodes || blocks != kBlocks)
    return shown + "'s tmpfs holds " + std::to_string(inodes) + " inodes and " + std::to_string(blocks) +
           " blocks, liblxc's tree " + std::to_string(kInodes) + " and " + std::to_string(kBlocks) +
           " (something under a mount on it?)";
  LXMIG_ASSIGN_OR_RETURN(std::string id, readBootId(dir, shown));
  if (id.empty()) return shown + "/" + kBootIdFile + " holds no boot id";
  *bootId = std::move(id);
  return std::string();
}

Result<std::string> devProblem(pid_t init, std::string* bootId) {
  if (init <= 0) return invalidArgument("no init process");
  const std::string proc = "/proc/" + std::to_string(init);
  LXMIG_ASSIGN_OR_RETURN(std::string mountinfo, readFileHead(proc + "/mountinfo", 4 << 20));
  if (std::string why = devMountProblem(mountinfo); !why.empty()) return why;
  std::string shown;
  auto dev = openDirBeneathRootOf(init, "dev", &shown);
  if (!dev.ok()) return "/dev cannot be read: " + dev.status().message();
  return devTreeProblem(dev->get(), shown, bootId);
}

Result<std::unique_ptr<PreparedTmpfs>> prepareDev(const std::string& dir, const std::string& bootId) {
  if (!isBootId(bootId)) return invalidArgument("a prepared /dev needs a boot id, not " + quote(bootId, 64));
  LXMIG_ASSIGN_OR_RETURN(auto dev, PreparedTmpfs::mount(dir, kStandard, 0, "/dev"));
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d) return Status::fromErrno("open", dir);
  for (const Entry& e : kTree) {
    const std::string name(e.name), shown = dir + "/" + name;
    int rc = 0;
    if (e.type == S_IFLNK) {
      if (::symlinkat(std::string(e.target).c_str(), d.get(), name.c_str()) != 0)
        return Status::fromErrno("symlink", shown);
      continue;
    } else if (e.type == S_IFDIR) {
      rc = ::mkdirat(d.get(), name.c_str(), e.perm);
    } else if (e.type == S_IFCHR) {
      rc = ::mknodat(d.get(), name.c_str(), S_IFCHR | e.perm, makedev(e.major, e.minor));
    } else {
      UniqueFd f(::openat(d.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, e.perm));
      if (!f) return Status::fromErrno("create", shown);
      const std::string text = bootId + "\n";
      LXMIG_RETURN_IF_ERROR(pwriteAll(f.get(), text.data(), text.size(), 0, shown));
    }
    if (rc != 0) return Status::fromErrno("make", shown);
    // Made in this private tmpfs a moment ago: no link to follow. The
    // umask took bits the tree has.
    if (::fchmodat(d.get(), name.c_str(), e.perm, 0) != 0) return Status::fromErrno("chmod", shown);
  }
  return dev;
}

}  // namespace lxmig::container
