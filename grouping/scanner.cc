// scanNode: one pass over /proc plus one sock_diag dump per network
// namespace. Objects are collected with their holders first; edges are drawn
// once everything is known.
#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/grouping/ipc_graph.h"
#include "proc_parse.h"
#include "sock_diag.h"

namespace lxmig::grouping {
namespace {

using internal::bracketInode;

constexpr unsigned kPfKthread = 0x00200000;
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif

struct ObjectRef {
  std::string kind;
  std::string object;
  std::string path;
  std::vector<Holder> holders;
};

// How a /proc file ends. A seq_file hands out at most its own buffer (a
// page) per read, however large ours is, so a short read is the end only of
// a file that is one record (stat: one line, always whole in the first
// read); any other is read until read() says end of file.
enum class Records { kOne, kMany };

// Reads a small /proc file relative to a directory fd; "" when it vanished.
bool readAt(int dirFd, const char* name, std::string* out, int* err, Records records = Records::kMany) {
  int fd = ::openat(dirFd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  UniqueFd guard(fd);
  out->clear();
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
    if (records == Records::kOne && static_cast<size_t>(n) < sizeof buf) return true;
  }
}

std::string linkAt(int dirFd, const char* name) {
  char buf[4096];
  ssize_t n = ::readlinkat(dirFd, name, buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

bool boringDevice(const std::string& path) {
  return path == "/dev/null" || path == "/dev/zero" || path == "/dev/full" || path == "/dev/random" ||
         path == "/dev/urandom" || path == "/dev/console" || path == "/dev/ptmx" || startsWith(path, "/dev/pts/") ||
         startsWith(path, "/dev/tty");
}

std::string stripDeleted(std::string p) {
  static const std::string kDel = " (deleted)";
  if (p.size() > kDel.size() && p.compare(p.size() - kDel.size(), kDel.size(), kDel) == 0)
    p.resize(p.size() - kDel.size());
  return p;
}

// What one process holds; committed to the scan only if the process is
// still the same one (pid, start time) after it was read.
struct ProcessHoldings {
  Process proc;
  std::vector<std::pair<std::string, ObjectRef>> objects;     // key -> ref with one holder
  std::vector<std::pair<uint64_t, Holder>> sockets;           // socket inode -> holder
  std::vector<std::tuple<std::string, int, Holder>> anonFds;  // link, fd, holder
};

class Scanner {
 public:
  explicit Scanner(const ScanOptions& o) : opts_(o) {}

  Scan run() {
    int64_t t0 = monotonicNs();
    // The scanner runs in the host IPC namespace (the agent does); pid 1 may
    // not (in a sandbox).
    hostIpc_ = nsInode("self", "ipc");
    hostPid_ = nsInode("self", "pid");
    // SysV segments of the scanner's IPC namespace, for evidence.
    if (auto t = readFile(opts_.procRoot + "/sysvipc/shm"); t.ok()) sysvShm_ = internal::parseSysvShm(*t);
    auto entries = listDir(opts_.procRoot);
    if (!entries.ok()) {
      scan_.unreadable.push_back(entries.status().message());
      return std::move(scan_);
    }
    std::vector<pid_t> pids;
    for (const auto& n : *entries) {
      uint64_t pid = 0;
      if (parseUint64(n, &pid) && pid > 0) pids.push_back(static_cast<pid_t>(pid));
    }
    std::sort(pids.begin(), pids.end());
    // Reading /proc is the cost (kernel time per process); spread it over
    // the cores, then merge in pid order so the result does not depend on
    // the threads' timing.
    std::vector<std::optional<ProcessHoldings>> read(pids.size());
    std::vector<std::vector<std::string>> problems(pids.size());
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (;;) {
        size_t begin = next.fetch_add(64);
        if (begin >= pids.size()) return;
        for (size_t i = begin; i < std::min(begin + 64, pids.size()); ++i) read[i] = readProcess(pids[i], &problems[i]);
      }
    };
    unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < n; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < pids.size(); ++i) {
      for (auto& p : problems[i]) scan_.unreadable.push_back(std::move(p));
      if (read[i]) commit(std::move(*read[i]));
    }
    unixEdges();
    anonEdges();
    netSockets();
    for (auto& [key, ref] : objects_) starEdges(ref);
    ipcNamespaceEdges();
    scan_.groups = buildGroups(scan_.processes, scan_.edges);
    scan_.durationMs = (monotonicNs() - t0) / 1000000;
    return std::move(scan_);
  }

 private:
  uint64_t nsInode(const std::string& pid, const char* ns) {
    std::string l = linkAt(AT_FDCWD, (opts_.procRoot + "/" + pid + "/ns/" + ns).c_str());
    return bracketInode(l, ns).value_or(0);
  }

  static void unreadable(std::vector<std::string>* out, pid_t pid, const char* what, int err) {
    if (err == ENOENT || err == ESRCH) return;  // gone: not a failure
    out->push_back("pid " + std::to_string(pid) + ": " + what + ": " + std::strerror(err));
  }

  bool fsIsMqueue(dev_t dev, const std::string& fdPath) {
    {
      std::lock_guard lk(mqMu_);
      auto it = mqueueDev_.find(dev);
      if (it != mqueueDev_.end()) return it->second;
    }
    struct statfs sf {};
    bool mq = ::statfs(fdPath.c_str(), &sf) == 0 && sf.f_type == MQUEUE_MAGIC;
    std::lock_guard lk(mqMu_);
    mqueueDev_[dev] = mq;
    return mq;
  }

  static std::string fileKey(dev_t dev, uint64_t ino) {
    return "dev " + std::to_string(major(dev)) + ":" + std::to_string(minor(dev)) + " ino " + std::to_string(ino);
  }

  // Reads one process (thread-safe). Nothing when it is gone, a kernel
  // thread or a zombie, or when its pid was reused while being read.
  std::optional<ProcessHoldings> readProcess(pid_t pid, std::vector<std::string>* problems) {
    std::string dir = opts_.procRoot + "/" + std::to_string(pid);
    int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return std::nullopt;
    UniqueFd dirFd(dfd);
    std::string text;
    int err = 0;
    if (!readAt(dfd, "stat", &text, &err, Records::kOne)) {
      unreadable(problems, pid, "stat", err);
      return std::nullopt;
    }
    auto st = internal::parseStat(text);
    if (!st || (st->flags & kPfKthread) || st->state == 'Z' || st->state == 'X') return std::nullopt;

    ProcessHoldings h;
    h.proc.pid = pid;
    h.proc.ppid = st->ppid;
    h.proc.startTime = st->startTime;
    h.proc.comm = st->comm;
    h.proc.ipcNs = bracketInode(linkAt(dfd, "ns/ipc"), "ipc").value_or(0);
    // Containers (LXC's included) have a PID namespace of their own; only
    // those are worth reading the cgroup file for, to learn their name.
    uint64_t pidNs = bracketInode(linkAt(dfd, "ns/pid"), "pid").value_or(0);
    if (pidNs && pidNs != hostPid_) {
      if (readAt(dfd, "cgroup", &text, &err)) h.proc.container = internal::containerFromCgroup(text);
      if (h.proc.container.empty()) h.proc.container = "pidns:" + std::to_string(pidNs);
    }

    // Every read goes through dfd, which stays bound to this process: if it
    // exits and its pid is reused meanwhile, the reads fail instead of
    // mixing two processes.
    scanFds(pid, dir, dfd, &h, problems);
    scanMaps(pid, dfd, &h, problems);
    // The network namespace only matters to processes holding sockets (its
    // sock_diag and /proc/net tables are read once per namespace).
    if (!h.sockets.empty()) h.proc.netNs = bracketInode(linkAt(dfd, "ns/net"), "net").value_or(0);
    return h;
  }

  void commit(ProcessHoldings&& h) {
    pid_t pid = h.proc.pid;

    for (auto& [key, ref] : h.objects) {
      auto [it, fresh] = objects_.try_emplace(key);
      if (fresh) {
        it->second.kind = ref.kind;
        it->second.object = ref.object;
        it->second.path = ref.path;
      }
      // One holder per process and object (a mapping may span several VMAs).
      auto& hs = it->second.holders;
      if (hs.empty() || hs.back().pid != pid) hs.push_back(ref.holders.front());
    }
    for (auto& [ino, holder] : h.sockets) socketHolders_[ino].push_back(holder);
    for (auto& a : h.anonFds) anonFds_.push_back(std::move(a));
    if (h.proc.netNs && !netnsPid_.count(h.proc.netNs)) netnsPid_[h.proc.netNs] = pid;
    scan_.processes[pid] = std::move(h.proc);
  }

  void scanFds(pid_t pid, const std::string& dir, int dfd, ProcessHoldings* h, std::vector<std::string>* problems) {
    int fdDir = ::openat(dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fdDir < 0) return unreadable(problems, pid, "fd", errno);
    UniqueFd fdDirGuard(fdDir);
    alignas(8) char buf[16384];
    for (;;) {
      long n = ::syscall(SYS_getdents64, fdDir, buf, sizeof buf);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        auto* e = reinterpret_cast<dirent64*>(buf + off);
        off += e->d_reclen;
        if (e->d_name[0] == '.') continue;
        scanFd(pid, dir, fdDir, e->d_name, h);
      }
      // proc's readdir fills the buffer as far as it can: a short batch
      // was the last one.
      if (n < static_cast<long>(sizeof buf / 2)) break;
    }
  }

  void scanFd(pid_t pid, const std::string& dir, int fdDir, const char* name, ProcessHoldings* h) {
    std::string link = linkAt(fdDir, name);
    if (link.empty()) return;  // closed meanwhile
    Holder holder{pid, std::string("fd ") + name};
    if (auto ino = bracketInode(link, "pipe")) {
      h->objects.push_back({"pipe:" + std::to_string(*ino), {kPipe, link, "", {holder}}});
    } else if (auto sino = bracketInode(link, "socket")) {
      h->sockets.emplace_back(*sino, holder);
    } else if (startsWith(link, "anon_inode:")) {
      h->anonFds.emplace_back(link, std::atoi(name), holder);
    } else if (link[0] == '/' && !boringDevice(link)) {
      struct stat sb {};
      if (::fstatat(fdDir, name, &sb, 0) != 0) return;
      std::string key = fileKey(sb.st_dev, sb.st_ino);
      std::string path = stripDeleted(link);
      if (S_ISFIFO(sb.st_mode)) {
        h->objects.push_back({key, {kFifo, key, path, {holder}}});
      } else if (startsWith(link, "/memfd:")) {
        h->objects.push_back({key, {kMemfd, key, path, {holder}}});
      } else if (startsWith(link, "/dev/shm/")) {
        h->objects.push_back({key, {kPosixShm, key, path, {holder}}});
      } else if (S_ISREG(sb.st_mode) && major(sb.st_dev) == 0 && fsIsMqueue(sb.st_dev, dir + "/fd/" + name)) {
        h->objects.push_back({key, {kMqueue, key, path, {holder}}});
      }
      // Other files, devices and directories are not IPC edges.
    }
  }

  void scanMaps(pid_t pid, int dfd, ProcessHoldings* h, std::vector<std::string>* problems) {
    std::string text;
    int err = 0;
    if (!readAt(dfd, "maps", &text, &err)) return unreadable(problems, pid, "maps", err);
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + start, end - start);
      start = end + 1;
      // Cheap filter before parsing: only shared mappings matter.
      auto sp = line.find(' ');
      if (sp == std::string_view::npos || sp + 4 >= line.size() || line[sp + 4] != 's') continue;
      auto m = internal::parseMapsLine(line);
      // SysV segments show their id as inode, and id 0 is a valid one.
      if (!m || (m->inode == 0 && !startsWith(m->path, "/SYSV"))) continue;
      dev_t dev = makedev(m->devMajor, m->devMinor);
      std::string key = fileKey(dev, m->inode);
      char range[64];
      std::snprintf(range, sizeof range, "map %llx-%llx %s", static_cast<unsigned long long>(m->start),
                    static_cast<unsigned long long>(m->end), m->perms.c_str());
      Holder holder{pid, range};
      std::string path = stripDeleted(m->path);
      const char* kind = nullptr;
      if (startsWith(path, "/SYSV")) kind = kSysvShm;
      else if (path == "/dev/zero" && m->devMajor == 0) kind = kSharedAnon;
      else if (startsWith(path, "/memfd:")) kind = kMemfd;
      else if (startsWith(path, "/dev/shm/")) kind = kPosixShm;
      else if (m->writable()) kind = kSharedFileMap;
      if (!kind) continue;  // read-only shared mapping of a file: not IPC
      std::string object = key;
      if (kind == kSysvShm) {
        // Every IPC namespace numbers its segments from 0 on one internal
        // mount: the same dev:inode is another segment in another one.
        key += "@ipc:" + std::to_string(h->proc.ipcNs);
        object = "shmid " + std::to_string(m->inode);
        // /proc/sysvipc/shm shows the scanner's IPC namespace only.
        auto it = sysvShm_.find(m->inode);
        if (it != sysvShm_.end() && h->proc.ipcNs == hostIpc_) object += " " + it->second;
      }
      h->objects.push_back({key, {kind, object, path, {holder}}});
    }
  }

  void addEdge(const std::string& kind, const std::string& object, const std::string& path, const Holder& a,
               const Holder& b) {
    if (a.pid == b.pid) return;
    Edge e;
    e.kind = kind;
    e.object = object;
    e.path = path;
    e.a = a;
    e.b = b;
    scan_.edges.push_back(std::move(e));
  }

  // Holders of one object: a star from the first holder keeps the edge count
  // linear in the number of holders; the component is the same.
  void starEdges(const ObjectRef& ref) {
    std::vector<const Holder*> distinct;
    std::set<pid_t> seen;
    for (const auto& h : ref.holders)
      if (seen.insert(h.pid).second) distinct.push_back(&h);
    for (size_t i = 1; i < distinct.size(); ++i) addEdge(ref.kind, ref.object, ref.path, *distinct[0], *distinct[i]);
  }

  void unixEdges() {
    std::unordered_map<uint64_t, internal::UnixSock> socks;
    for (const auto& [ns, pid] : netnsPid_) {
      auto fd = internal::openDiagIn(opts_.procRoot + "/" + std::to_string(pid) + "/ns/net");
      if (!fd.ok()) {
        if (fd.status().code() != Code::kNotFound)
          scan_.unreadable.push_back("netns " + std::to_string(ns) + ": " + fd.status().message());
        continue;
      }
      auto list = internal::dumpUnixSockets(fd->get());
      if (!list.ok()) {
        scan_.unreadable.push_back("netns " + std::to_string(ns) + ": " + list.status().message());
        continue;
      }
      for (auto& s : *list) socks[s.inode] = std::move(s);
    }
    auto holders = [&](uint64_t ino) -> const std::vector<Holder>* {
      auto it = socketHolders_.find(ino);
      return it == socketHolders_.end() || it->second.empty() ? nullptr : &it->second;
    };
    for (const auto& [ino, s] : socks) {
      const auto* mine = holders(ino);
      if (!mine) continue;
      std::string name = s.name;
      // One socket held by several processes (inherited or passed).
      ObjectRef shared{kUnixShared, "socket:[" + std::to_string(ino) + "]", name, *mine};
      starEdges(shared);
      // Each connected pair once: from its lower inode when both ends are
      // known, else from the end we have.
      auto back = socks.find(s.peer);
      bool mutual = back != socks.end() && back->second.peer == ino;
      if (s.peer && (!mutual || ino < s.peer)) {
        const auto* theirs = holders(s.peer);
        if (theirs) {
          auto pit = socks.find(s.peer);
          if (name.empty() && pit != socks.end()) name = pit->second.name;
          const char* kind = s.type == SOCK_DGRAM ? kUnixDgram : kUnixStream;
          addEdge(kind, "socket:[" + std::to_string(ino) + "]<->socket:[" + std::to_string(s.peer) + "]", name,
                  mine->front(), theirs->front());
        }
      }
      for (uint64_t client : s.pending) {
        if (const auto* c = holders(client))
          addEdge(kUnixListener, "socket:[" + std::to_string(ino) + "]<-socket:[" + std::to_string(client) + "]",
                  s.name, mine->front(), c->front());
      }
    }
  }

  // Same open file (eventfd, epoll, inotify, signalfd, timerfd...): all
  // anon inodes of a type share one inode, so only kcmp can tell files apart.
  void anonEdges() {
    std::map<std::string, std::vector<std::vector<size_t>>> classes;  // link -> classes of indexes
    for (size_t i = 0; i < anonFds_.size(); ++i) {
      const auto& [link, fd, holder] = anonFds_[i];
      auto& cls = classes[link];
      bool placed = false;
      for (auto& c : cls) {
        const auto& [l0, fd0, h0] = anonFds_[c.front()];
        if (h0.pid == holder.pid) continue;  // dup()s within one process do not join processes
        long r = ::syscall(SYS_kcmp, h0.pid, holder.pid, KCMP_FILE, fd0, fd);
        if (r == 0) {
          c.push_back(i);
          placed = true;
          break;
        }
      }
      if (!placed) cls.push_back({i});
    }
    for (const auto& [link, cls] : classes) {
      for (const auto& c : cls) {
        if (c.size() < 2) continue;
        ObjectRef ref{kSharedFile, link, link, {}};
        for (size_t i : c) ref.holders.push_back(std::get<2>(anonFds_[i]));
        starEdges(ref);
      }
    }
  }

  // TCP/UDP sockets: a property of the process, not an edge.
  void netSockets() {
    std::unordered_map<uint64_t, std::string> rows;
    for (const auto& [ns, pid] : netnsPid_) {
      for (auto [file, proto, v6] : {std::tuple{"tcp", "tcp", false}, std::tuple{"tcp6", "tcp6", true},
                                     std::tuple{"udp", "udp", false}, std::tuple{"udp6", "udp6", true}}) {
        auto text = readFile(opts_.procRoot + "/" + std::to_string(pid) + "/net/" + file);
        if (!text.ok()) continue;
        for (const auto& line : split(*text, '\n')) {
          if (auto row = internal::parseNetLine(line, proto, v6)) rows[row->inode] = row->summary;
        }
      }
    }
    for (const auto& [ino, hs] : socketHolders_) {
      auto it = rows.find(ino);
      if (it == rows.end()) continue;
      for (const auto& h : hs) {
        auto p = scan_.processes.find(h.pid);
        if (p != scan_.processes.end()) p->second.netSockets.push_back(it->second + " (" + h.how + ")");
      }
    }
  }

  void ipcNamespaceEdges() {
    std::map<uint64_t, std::vector<pid_t>> byNs;
    for (const auto& [pid, p] : scan_.processes)
      if (p.ipcNs && p.ipcNs != hostIpc_) byNs[p.ipcNs].push_back(pid);
    for (const auto& [ns, pids] : byNs) {
      ObjectRef ref{kIpcNamespace, "ipc:[" + std::to_string(ns) + "]", "", {}};
      for (pid_t p : pids) ref.holders.push_back({p, "ipc namespace"});
      starEdges(ref);
    }
  }

  ScanOptions opts_;
  Scan scan_;
  uint64_t hostIpc_ = 0, hostPid_ = 0;
  std::map<uint64_t, std::string> sysvShm_;  // shmid -> evidence, read before the parallel part
  std::map<std::string, ObjectRef> objects_;
  std::unordered_map<uint64_t, std::vector<Holder>> socketHolders_;
  std::vector<std::tuple<std::string, int, Holder>> anonFds_;
  std::map<uint64_t, pid_t> netnsPid_;
  std::mutex mqMu_;
  std::unordered_map<dev_t, bool> mqueueDev_;
};

}  // namespace

Scan scanNode(const ScanOptions& opts) { return Scanner(opts).run(); }

}  // namespace lxmig::grouping
