#include "lxmig/container/unmovable.h"

#include <sys/vfs.h>

#include <set>

#include "lxmig/base/files.h"

namespace lxmig::container {
namespace {

// Whether `path` is `dir` or lies under it.
bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return startsWith(path, dir) && (path.size() == dir.size() || path[dir.size()] == '/');
}

// The mount point (as the process sees it) of mount `mntId` of `pid`, from
// its mountinfo: the kernel's word, whatever links the path took.
std::string mountPoint(const std::string& pid, const std::string& mntId) {
  for (const auto& line : split(readFile("/proc/" + pid + "/mountinfo").value_or(""), '\n')) {
    auto f = split(line, ' ');
    if (f.size() > 4 && f[0] == mntId) return f[4];
  }
  return "";
}

}  // namespace

std::vector<std::string> locksInBinds(const std::vector<pid_t>& pids, const std::vector<Bind>& binds) {
  std::vector<std::string> out;
  if (binds.empty()) return out;
  std::set<std::string> seen;  // "dev:inode kind" of the locks reported
  for (pid_t p : pids) {
    const std::string pid = std::to_string(p);
    for (const auto& fd : listDir("/proc/" + pid + "/fdinfo").value_or({})) {
      std::string mntId;
      std::vector<std::string> locks;
      for (const auto& line : split(readFile("/proc/" + pid + "/fdinfo/" + fd).value_or(""), '\n')) {
        if (startsWith(line, "mnt_id:")) mntId = std::string(trim(line.substr(7)));
        // "lock:\t1: FLOCK  ADVISORY  WRITE 14861 fe:00:11001858 0 EOF"
        if (startsWith(line, "lock:")) locks.push_back(line.substr(5));
      }
      if (locks.empty()) continue;
      const std::string at = mountPoint(pid, mntId);
      const Bind* bind = nullptr;
      for (const auto& b : binds)
        if (!at.empty() && under(at, b.containerPath)) bind = &b;
      if (!bind) continue;
      const std::string file = readLink("/proc/" + pid + "/fd/" + fd).value_or("fd " + fd);
      for (const auto& l : locks) {
        std::vector<std::string> f;
        for (const auto& w : split(l, ' '))
          if (!trim(w).empty()) f.emplace_back(trim(w));
        // number, kind, ADVISORY|MANDATORY, READ|WRITE, pid, dev:inode, start, end
        if (f.size() < 6 || !seen.insert(f[5] + " " + f[1] + " " + f[3]).second) continue;
        out.push_back("`" + file + "` (bind of " + bind->hostPath + ") is locked by " + processLabel(p) + " (" + f[1] +
                      " " + f[3] +
                      "): the target sees the same file and its restore would wait for this "
                      "lock; release it or move the file out of the bind");
      }
    }
  }
  return out;
}

std::vector<std::string> messageQueues(const std::vector<pid_t>& pids) {
  constexpr long kMqueueMagic = 0x19800202;  // linux/magic.h MQUEUE_MAGIC
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (pid_t p : pids) {
    const std::string base = "/proc/" + std::to_string(p) + "/fd/";
    for (const auto& fd : listDir(base).value_or({})) {
      struct statfs fs {};
      if (::statfs((base + fd).c_str(), &fs) != 0 || fs.f_type != kMqueueMagic) continue;
      const std::string queue = readLink(base + fd).value_or("fd " + fd);
      if (!seen.insert(queue + " " + std::to_string(p)).second) continue;
      out.push_back("POSIX message queue `" + queue + "` is open in " + processLabel(p) +
                    ": CRIU cannot checkpoint message queues; close it (or use a Unix socket) before migrating");
    }
  }
  return out;
}

}  // namespace lxmig::container
