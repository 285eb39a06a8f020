#include "tasks.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/container/dev_shm.h"

namespace lxmig::migration {

// The fields of /proc/PID/stat after the command name (state first); empty
// when the process is gone.
std::vector<std::string> statFields(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return {};
  auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return {};
  return split(stat->substr(close + 2), ' ');
}

std::string startTimeOf(pid_t pid) {
  auto f = statFields(pid);
  return f.size() > 19 ? f[19] : "";
}

// The tree under root, from /proc/PID/task/TID/children (complete while it
// is stopped: nothing forks).
std::vector<Task> treeOf(pid_t root) {
  std::vector<Task> out;
  std::vector<pid_t> todo = {root};
  std::set<pid_t> seen;
  while (!todo.empty() && out.size() < kMaxMembers * 4) {
    pid_t p = todo.back();
    todo.pop_back();
    if (!seen.insert(p).second) continue;
    std::string st = startTimeOf(p);
    if (st.empty()) continue;
    out.push_back({p, st});
    std::string tasks = "/proc/" + std::to_string(p) + "/task";
    for (const auto& tid : listDir(tasks).value_or({})) {
      auto kids = readFile(tasks + "/" + tid + "/children");
      if (!kids.ok()) continue;
      for (const auto& k : split(*kids, ' ')) {
        uint64_t v = 0;
        if (parseUint64(trim(k), &v) && v > 0 && v < (uint64_t{1} << 22)) todo.push_back(static_cast<pid_t>(v));
      }
    }
  }
  return out;
}

bool isZombie(pid_t pid) {
  auto f = statFields(pid);
  return !f.empty() && f[0] == "Z";
}

bool anyAlive(const std::vector<Task>& tasks) {
  for (const auto& t : tasks)
    if (startTimeOf(t.pid) == t.startTime) return true;
  return false;
}

void signalTree(const std::vector<Task>& tree, int sig) {
  for (const auto& t : tree)
    if (startTimeOf(t.pid) == t.startTime) ::kill(t.pid, sig);
}

void awaitGone(const std::vector<Task>& tree, int timeoutMs) {
  for (int waited = 0; waited < timeoutMs; waited += 10) {
    bool alive = false;
    for (const auto& t : tree) alive |= startTimeOf(t.pid) == t.startTime && !isZombie(t.pid);
    if (!alive) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string tasksText(const std::vector<Task>& tasks) {
  std::string out;
  for (const auto& t : tasks) out += " " + std::to_string(t.pid) + ":" + t.startTime;
  return out;
}

std::vector<Task> parseTasks(std::string_view text) {
  std::vector<Task> out;
  for (const auto& item : split(std::string(text), ' ')) {
    auto colon = item.find(':');
    uint64_t pid = 0;
    if (colon != std::string::npos && parseUint64(item.substr(0, colon), &pid) && pid > 0 && pid < (1u << 22))
      out.push_back({static_cast<pid_t>(pid), item.substr(colon + 1)});
  }
  return out;
}

uint64_t treeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : listDirEntries(dir).value_or({})) {
    struct stat st {};
    if (::stat((dir + "/" + e.name).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

ImagesWatch::ImagesWatch(Progressor& progress, std::string dir) {
  thread_ = std::thread([this, &progress, dir = std::move(dir)] {
    uint64_t seen = 0;
    std::unique_lock lk(mu_);
    while (!cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return stop_; })) {
      uint64_t now = treeBytes(dir);
      for (const auto& e : listDirEntries(dir).value_or({}))
        if (e.type == DT_DIR) now += treeBytes(dir + "/" + e.name);
      if (now > seen) progress.add(now - seen);
      seen = std::max(seen, now);
    }
  });
}

ImagesWatch::~ImagesWatch() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool shmFileExists(pid_t init, const std::string& file) {
  std::string shown;
  auto dir = container::openDevShmDir(init, &shown);
  if (!dir.ok()) return false;
  struct stat st {};
  return ::fstatat(dir->get(), file.substr(file.rfind('/') + 1).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Status copyShmFiles(const std::vector<std::string>& files, pid_t fromInit, pid_t toInit) {
  if (files.empty()) return okStatus();
  std::string from, to;
  LXMIG_ASSIGN_OR_RETURN(UniqueFd src, container::openDevShmDir(fromInit, &from));
  LXMIG_ASSIGN_OR_RETURN(UniqueFd dir, container::openDevShmDir(toInit, &to));
  for (const auto& f : files) {
    if (!startsWith(f, "/dev/shm/")) return invalidArgument(quote(f) + " is not directly in /dev/shm");
    const std::string base = f.substr(f.rfind('/') + 1);
    LXMIG_RETURN_IF_ERROR(checkRelativePath(base));  // one component: no "..", no control characters
    if (f.size() != 9 + base.size()) return invalidArgument(quote(f) + " is not directly in /dev/shm");
    UniqueFd in(::openat(src.get(), base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) return Status::fromErrno("open", from + "/" + base);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) return failedPrecondition(f + " is not a regular file");
    UniqueFd out(::openat(dir.get(), base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out && errno == EEXIST) return alreadyExists(to + "/" + base + " exists already");
    if (!out) return Status::fromErrno("create", to + "/" + base);
    // Two tmpfs mounts: copy_file_range refuses (EXDEV), a plain copy does.
    std::vector<char> buf(uint64_t{1} << 20);
    for (uint64_t off = 0, size = static_cast<uint64_t>(st.st_size); off < size;) {
      uint64_t n = std::min<uint64_t>(buf.size(), size - off);
      LXMIG_RETURN_IF_ERROR(preadAll(in.get(), buf.data(), n, off, from + "/" + base));
      LXMIG_RETURN_IF_ERROR(pwriteAll(out.get(), buf.data(), n, off, to + "/" + base));
      off += n;
    }
    if (::fchown(out.get(), st.st_uid, st.st_gid) != 0 || ::fchmod(out.get(), st.st_mode & 07777) != 0)
      return Status::fromErrno("set the owner and mode of", to + "/" + base);
  }
  return okStatus();
}

}  // namespace lxmig::migration
