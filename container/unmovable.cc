#include "lxmig/container/unmovable.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include <linux/kcmp.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/process.h"
#include "lxmig/base/sysvipc.h"

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

// The value of "key:" in an fdinfo text ("" when absent).
std::string fdinfoValue(const std::string& info, std::string_view key) {
  for (const auto& line : split(info, '\n'))
    if (startsWith(line, key) && line.size() > key.size() && line[key.size()] == ':')
      return std::string(trim(std::string_view(line).substr(key.size() + 1)));
  return "";
}

// Bytes waiting to be read in fd `fd` of `pid` (FIONREAD on a duplicate);
// 0 when it cannot be asked.
int queuedBytes(pid_t pid, int fd) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return 0;
  UniqueFd dup(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  int n = 0;
  if (!dup || ::ioctl(dup.get(), FIONREAD, &n) != 0) return 0;
  return n;
}

// What CRIU would do to an anonymous-inode file `kind` with fdinfo `info`
// ("" when it moves as it is).
std::string anonFileProblem(const std::string& kind, const std::string& info, pid_t pid, int fd) {
  if (kind == "[io_uring]") return "an io_uring instance: CRIU cannot checkpoint io_uring";
  if (kind == "[userfaultfd]") return "a userfaultfd: CRIU cannot checkpoint one it did not create";
  if (kind == "[eventfd]" && fdinfoValue(info, "eventfd-semaphore") == "1")
    return "an eventfd in semaphore mode: CRIU would restore it as a plain counter";
  if (kind == "[eventpoll]") {
    // "tfd:        7 events:       40000000 data: ..." — an EPOLLONESHOT
    // entry that fired keeps only the flag bits.
    constexpr uint32_t kFlagBits = EPOLLONESHOT | EPOLLET | EPOLLWAKEUP | EPOLLEXCLUSIVE;
    for (const auto& line : split(info, '\n')) {
      if (!startsWith(line, "tfd:")) continue;
      std::vector<std::string> w;
      for (auto x : words(line)) w.emplace_back(x);
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        if (w[i] != "events:") continue;
        const uint32_t ev = static_cast<uint32_t>(std::strtoul(w[i + 1].c_str(), nullptr, 16));
        if ((ev & EPOLLONESHOT) && (ev & ~kFlagBits) == 0)
          return "an epoll set whose EPOLLONESHOT entry for fd " + w[1] +
                 " fired and is not re-armed yet: CRIU would restore it armed for EPOLLERR|EPOLLHUP";
      }
    }
  }
  if ((kind == "inotify" || kind == "[fanotify]") && queuedBytes(pid, fd) > 0)
    return "an " + std::string(kind == "inotify" ? "inotify" : "fanotify") +
           " instance with events queued unread: CRIU does not carry them";
  // A periodic timer whose expirations wait unread shows it_value (0, 0).
  if (kind == "[timerfd]" && fdinfoValue(info, "clockid") == "0" &&
      (fdinfoValue(info, "it_value") != "(0, 0)" || fdinfoValue(info, "it_interval") != "(0, 0)"))
    return "an armed CLOCK_REALTIME timerfd: it does not fire after CRIU's restore";
  return "";
}

// Whether `path` (absolute, as process `pid` sees it) names the file `st`,
// looked up beneath that process's root without following a link.
bool namesFile(pid_t pid, const std::string& path, const struct stat& st) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 >= path.size()) return false;
  const std::string dir = slash == 0 ? "." : path.substr(1, slash - 1), leaf = path.substr(slash + 1);
  std::string shown;
  auto d = openDirBeneathRootOf(pid, dir, &shown);
  struct stat there {};
  return d.ok() && ::fstatat(d->get(), leaf.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 && there.st_dev == st.st_dev &&
         there.st_ino == st.st_ino;
}

// What CRIU would do to the open file `link` (the text of /proc/PID/fd/N,
// `fdPath`): "" when it moves. A file unlinked while open but still linked
// under another name: CRIU links it back into the tree under a name of its
// own for the dump (--link-remap) and, leaving the tasks running, removes
// that name again when the dump ends, so the writable area never carries
// it and the restore cannot open it. (One with no link left moves: its
// content goes into the images.)
std::string unlinkedButLinkedProblem(pid_t pid, const std::string& link, const std::string& fdPath) {
  constexpr std::string_view kDeleted = " (deleted)";
  if (link.empty() || link[0] != '/' || link.size() <= kDeleted.size() ||
      link.compare(link.size() - kDeleted.size(), kDeleted.size(), kDeleted) != 0)
    return "";
  struct stat st {};
  // stat of the open file itself (the magic link), not of a path of the
  // container's.
  if (::stat(fdPath.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0) return "";
  // A file whose own name ends in " (deleted)", still there under it.
  if (namesFile(pid, link, st)) return "";
  return "the file " + quote(link.substr(0, link.size() - kDeleted.size()), 200) +
         ", unlinked while open but linked elsewhere (" + std::to_string(st.st_nlink) +
         " links): CRIU links it back for the dump and removes that link when the dump ends, so the restore "
         "cannot open it; close it or remove its other names first";
}

// The "VmLck:" of a /proc/PID/status text in kB (0 when absent).
uint64_t lockedKb(const std::string& status) {
  for (const auto& line : split(status, '\n')) {
    if (!startsWith(line, "VmLck:")) continue;
    auto w = split(std::string(trim(line.substr(6))), ' ');
    uint64_t kb = 0;
    return !w.empty() && parseUint64(w[0], &kb) ? kb : 0;
  }
  return 0;
}

// Whether the IPC namespace of `pid` holds a System V semaphore set
// (/proc/sysvipc/sem shows the reading thread's namespace). Nothing
// readable counts as none: nothing is refused on a guess.
bool hasSemaphoreSets(pid_t pid) {
  bool any = false;
  (void)inNamespace("/proc/" + std::to_string(pid) + "/ns/ipc", CLONE_NEWIPC, [&]() -> Status {
    LXMIG_ASSIGN_OR_RETURN(auto rows, readSysvTable("sem"));
    any = !rows.empty();
    return okStatus();
  });
  return any;
}

// The processes of `pids` that may hold System V semaphore adjustments:
// they have an undo list (kcmp KCMP_SYSVSEM against a child forked here,
// which has none: a fork never inherits one) and their IPC namespace holds
// semaphore sets (a list's entries name sets of the namespace it was made
// in; leaving that namespace drops the list). Such a list holds what the
// SEM_UNDO operations of the process will undo at its exit; no interface
// reads it (nor tells an empty one: every pthread_create() makes one for
// the threads to share), so CRIU cannot carry it.
std::vector<pid_t> withSemaphoreUndo(const std::vector<pid_t>& pids) {
  // The namespaces first: almost no container holds a semaphore set, and
  // then nothing is forked.
  std::map<std::string, bool> setsIn;  // IPC namespace -> it holds semaphore sets
  std::vector<pid_t> candidates;
  for (pid_t pid : pids) {
    auto ns = readLink("/proc/" + std::to_string(pid) + "/ns/ipc");
    if (!ns.ok()) continue;
    auto it = setsIn.find(*ns);
    if (it == setsIn.end()) it = setsIn.emplace(*ns, hasSemaphoreSets(pid)).first;
    if (it->second) candidates.push_back(pid);
  }
  if (candidates.empty()) return {};
  const pid_t ref = ::fork();
  if (ref < 0) return {};
  if (ref == 0)
    for (;;) ::pause();
  std::vector<pid_t> out;
  for (pid_t pid : candidates)
    if (::syscall(SYS_kcmp, ref, pid, KCMP_SYSVSEM, 0, 0) > 0) out.push_back(pid);
  ::kill(ref, SIGKILL);
  while (::waitpid(ref, nullptr, 0) < 0 && errno == EINTR) {
  }
  return out;
}

}  // namespace

std::vector<LockOnFaultGap> lockOnFaultGaps(std::string_view smaps) {
  std::vector<LockOnFaultGap> out;
  // Each mapping: "start-end perms offset dev inode [path]", then "Key: value"
  // lines, VmFlags last.
  LockOnFaultGap cur;
  bool have = false, rss = false, size = false;
  for (const auto& line : split(smaps, '\n')) {
    std::vector<std::string> w;
    for (auto x : words(line)) w.emplace_back(x);
    if (w.empty()) continue;
    const size_t dash = w[0].find('-');
    if (w[0].back() != ':' && dash != std::string::npos && w.size() >= 5) {
      uint64_t a = 0, b = 0;
      char* end = nullptr;
      const std::string lo = w[0].substr(0, dash), hi = w[0].substr(dash + 1);
      errno = 0;
      a = std::strtoull(lo.c_str(), &end, 16);
      const bool okLo = !lo.empty() && *end == '\0' && errno == 0;
      b = std::strtoull(hi.c_str(), &end, 16);
      have = okLo && !hi.empty() && *end == '\0' && errno == 0 && a < b;
      cur = {a, b, 0, 0};
      rss = size = false;
      continue;
    }
    if (!have) continue;
    uint64_t kb = 0;
    if (w.size() == 3 && w[2] == "kB" && parseUint64(w[1], &kb)) {
      if (w[0] == "Size:") cur.sizeKb = kb, size = true;
      if (w[0] == "Rss:") cur.rssKb = kb, rss = true;
    }
    if (w[0] == "VmFlags:") {
      const bool onFault = std::find(w.begin() + 1, w.end(), "lf") != w.end();
      if (onFault && rss && size && cur.rssKb < cur.sizeKb) out.push_back(cur);
      have = false;
    }
  }
  return out;
}

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

std::vector<std::string> unmovableFiles(const std::vector<pid_t>& pids) {
  std::vector<std::string> out;
  std::set<pid_t> mine(pids.begin(), pids.end());
  for (pid_t p : pids) {
    const std::string base = "/proc/" + std::to_string(p);
    // "812 (name) T ...": the state follows the last ')'.
    const std::string stat = readFile(base + "/stat").value_or("");
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && (stat[close + 2] == 'T' || stat[close + 2] == 't'))
      out.push_back(processLabel(p) + " is stopped (" + (stat[close + 2] == 'T' ? "SIGSTOP" : "traced") +
                    "): CRIU's dump would wait for it for good inside the frozen container; continue it "
                    "(kill -CONT) first");
    if (lockedKb(readFile(base + "/status").value_or("")) > 0)
      for (const auto& g : lockOnFaultGaps(readFile(base + "/smaps").value_or(""))) {
        char range[64];
        std::snprintf(range, sizeof range, "%" PRIx64 "-%" PRIx64, g.start, g.end);
        out.push_back(processLabel(p) + " has a region locked on fault (mlock2 MLOCK_ONFAULT) at " + range + ", " +
                      std::to_string(g.rssKb) + " of " + std::to_string(g.sizeKb) +
                      " kB resident: CRIU would restore it locked and resident whole");
      }
    for (const auto& fd : listDir(base + "/fd").value_or({})) {
      auto link = readLink(base + "/fd/" + fd);
      if (link.ok()) {
        const std::string why = unlinkedButLinkedProblem(p, *link, base + "/fd/" + fd);
        if (!why.empty()) out.push_back("fd " + fd + " of " + processLabel(p) + " is " + why);
      }
      if (!link.ok() || !startsWith(*link, "anon_inode:")) continue;
      const std::string kind = link->substr(11);
      uint64_t n = 0;
      if (!parseUint64(fd, &n)) continue;
      const std::string problem =
          anonFileProblem(kind, readFile(base + "/fdinfo/" + fd).value_or(""), p, static_cast<int>(n));
      if (!problem.empty()) out.push_back("fd " + fd + " of " + processLabel(p) + " is " + problem);
    }
  }
  // "1: -> POSIX  ADVISORY  WRITE 1234 fe:00:1311 0 EOF": a waiter.
  for (const auto& line : split(readFile("/proc/locks").value_or(""), '\n')) {
    std::vector<std::string> w;
    for (auto x : words(line)) w.emplace_back(x);
    uint64_t pid = 0;
    if (w.size() < 7 || w[1] != "->" || !parseUint64(w[5], &pid) || !mine.count(static_cast<pid_t>(pid))) continue;
    out.push_back(processLabel(static_cast<pid_t>(pid)) + " waits for a " + w[2] + " lock on inode " + w[6] +
                  ": after CRIU's restore it got the lock while its holder still held it; migrate once it has it");
  }
  for (pid_t p : withSemaphoreUndo(pids))
    out.push_back(
        processLabel(p) +
        " has a System V semaphore undo list (semop SEM_UNDO) and its IPC namespace holds semaphore sets: its "
        "adjustments cannot be read and CRIU drops them, so its exit would no longer undo them after the "
        "move; migrate once it has exited");
  return out;
}

}  // namespace lxmig::container
