#include "lxmig/base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "lxmig/base/fd.h"

namespace lxmig {

Result<std::string> readLink(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return Status::fromErrno("readlink", path);
  return std::string(buf, static_cast<size_t>(n));
}

Result<std::string> readFile(const std::string& path) { return readFileHead(path, SIZE_MAX); }

Result<std::string> readFileHead(const std::string& path, size_t max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::fromErrno("open", path);
  std::string out;
  char buf[65536];
  while (out.size() < max) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, max - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

static Status writeAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return okStatus();
}

Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return Status::fromErrno("create", tmp);
    Status st = writeAll(fd.get(), data, tmp);
    if (st.ok() && ::fsync(fd.get()) != 0) st = Status::fromErrno("fsync", tmp);
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::fromErrno("rename", path);
    ::unlink(tmp.c_str());
    return st;
  }
  return okStatus();
}

Status syncFilesystem(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::fromErrno("open", dir);
  if (::syncfs(fd.get()) != 0) return Status::fromErrno("syncfs", dir);
  return okStatus();
}

Result<uint64_t> freeBytesIn(const std::string& dir) {
  struct statvfs vf {};
  if (::statvfs(dir.c_str(), &vf) != 0) return Status::fromErrno("statvfs", dir);
  return static_cast<uint64_t>(vf.f_bavail) * vf.f_frsize;
}

Status copyFileRange(int in, uint64_t inOff, int out, uint64_t outOff, uint64_t len, const std::string& what) {
  loff_t i = static_cast<loff_t>(inOff), o = static_cast<loff_t>(outOff);
  while (len > 0) {
    ssize_t n = ::copy_file_range(in, &i, out, &o, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::fromErrno("copy into", what, n == 0 ? EIO : errno);
    len -= static_cast<uint64_t>(n);
  }
  return okStatus();
}

Status preadAll(int fd, char* p, uint64_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::fromErrno("read", path);
    if (r == 0) return internalError(path + ": ends before offset " + std::to_string(off + n));
    p += r, off += static_cast<uint64_t>(r), n -= static_cast<uint64_t>(r);
  }
  return okStatus();
}

Status pwriteAll(int fd, const char* p, uint64_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::fromErrno("write", path);
    p += w, off += static_cast<uint64_t>(w), n -= static_cast<uint64_t>(w);
  }
  return okStatus();
}

Status writeFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return Status::fromErrno("open", path);
  return writeAll(fd.get(), data, path);
}

Result<std::vector<DirEntry>> listDirAt(int dirfd, const std::string& shown) {
  // fdopendir takes the fd over: give it a duplicate, rewound.
  int fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Status::fromErrno("dup", shown);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return Status::fromErrno("opendir", shown);
  }
  ::rewinddir(d);
  std::vector<DirEntry> out;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") out.push_back({std::string(n), e->d_type});
    errno = 0;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) {
    errno = err;
    return Status::fromErrno("readdir", shown);
  }
  return out;
}

Result<std::vector<DirEntry>> listDirEntries(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return notFound("no directory `" + path + "`");
    return Status::fromErrno("open", path);
  }
  return listDirAt(fd.get(), path);
}

Result<std::vector<std::string>> listDir(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(auto entries, listDirEntries(path));
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (auto& e : entries) names.push_back(std::move(e.name));
  return names;
}

Status makeDirs(const std::string& path, unsigned mode) {
  if (path.empty()) return okStatus();
  std::string cur;
  for (const auto& part : split(path, '/')) {
    cur += "/" + part;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return Status::fromErrno("mkdir", cur);
  }
  return okStatus();
}

static Status removeAt(int dirfd, const char* name, dev_t dev, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return okStatus();
    return Status::fromErrno("stat", shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) return failedPrecondition("refusing to remove mount point `" + shown + "`");
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Status::fromErrno("open", shown);
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return Status::fromErrno("opendir", shown);
    }
    Status result;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      Status s = removeAt(::dirfd(d), e->d_name, dev, shown + "/" + e->d_name);
      if (!s.ok() && result.ok()) result = s;
    }
    ::closedir(d);
    if (!result.ok()) return result;
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return Status::fromErrno("rmdir", shown);
    return okStatus();
  }
  if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) return Status::fromErrno("unlink", shown);
  return okStatus();
}

Status removeTreeAt(int dirfd, const std::string& name, const std::string& shown) {
  struct stat parent {};
  if (::fstat(dirfd, &parent) != 0) return Status::fromErrno("stat", shown);
  return removeAt(dirfd, name.c_str(), parent.st_dev, shown);
}

namespace {

struct OpenHow {
  uint64_t flags, mode, resolve;
};
constexpr uint64_t kResolveNoMagiclinks = 0x02, kResolveNoSymlinks = 0x04, kResolveBeneath = 0x08;

// O_NOFOLLOW on every component: what openat2 does, for kernels before 5.6.
Result<UniqueFd> walkBeneath(int rootfd, const std::string& rel, int flags, const std::string& shown) {
  UniqueFd cur(::fcntl(rootfd, F_DUPFD_CLOEXEC, 0));
  if (!cur) return Status::fromErrno("dup", shown);
  for (const auto& part : split(rel, '/')) {
    if (part == ".") continue;
    UniqueFd next(::openat(cur.get(), part.c_str(), flags | O_NOFOLLOW));
    if (!next) {
      if (errno == ENOENT) return notFound("no directory `" + shown + "`");
      if (errno == ELOOP || errno == ENOTDIR)
        return failedPrecondition("`" + shown + "` leads through a link or a non-directory (`" + part + "`)");
      return Status::fromErrno("open", shown);
    }
    cur = std::move(next);
  }
  return cur;
}

}  // namespace

Result<UniqueFd> openDirBeneath(int rootfd, const std::string& rel, const std::string& shown, bool pathOnly) {
  const int flags = O_DIRECTORY | O_CLOEXEC | (pathOnly ? O_PATH : O_RDONLY);
  OpenHow how{static_cast<uint64_t>(flags), 0, kResolveBeneath | kResolveNoSymlinks | kResolveNoMagiclinks};
  long fd = ::syscall(SYS_openat2, rootfd, rel.empty() ? "." : rel.c_str(), &how, sizeof how);
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  switch (errno) {
    case ENOSYS:
      return walkBeneath(rootfd, rel, flags, shown);
    case ENOENT:
      return notFound("no directory `" + shown + "`");
    case ELOOP:
    case EXDEV:
    case ENOTDIR:
      return failedPrecondition("`" + shown + "` leads through a link or a non-directory");
    default:
      return Status::fromErrno("open", shown);
  }
}

Result<UniqueFd> openDirBeneathRootOf(int pid, const std::string& rel, std::string* shown) {
  const std::string rootPath = "/proc/" + std::to_string(pid) + "/root";
  *shown = rootPath + "/" + rel;
  UniqueFd root(::open(rootPath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::fromErrno("open", rootPath);
  return openDirBeneath(root.get(), rel, *shown);
}

Status removeTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return okStatus();
    return Status::fromErrno("stat", path);
  }
  return removeAt(AT_FDCWD, path.c_str(), st.st_dev, path);
}

std::string bootId() {
  auto id = readFile("/proc/sys/kernel/random/boot_id");
  return id.ok() ? std::string(trim(*id)) : std::string();
}

bool pathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> programDir() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return Status::fromErrno("readlink", "/proc/self/exe");
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::vector<std::string> split(std::string_view s, char sep, bool skipEmpty) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    std::string_view part = s.substr(start, pos == std::string_view::npos ? s.npos : pos - start);
    if (!part.empty() || !skipEmpty) out.emplace_back(part);
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool startsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool parseUint64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t nv = v * 10 + static_cast<uint64_t>(c - '0');
    if (nv / 10 != v) return false;
    v = nv;
  }
  *out = v;
  return true;
}

int64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t wallMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string humanBytes(uint64_t b) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace lxmig
