// lxmig adopt's checks (adoption.h): facts read from /proc, rules applied
// to them without touching anything.
#include "lxmig/grouping/adoption.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "proc_parse.h"

namespace lxmig::grouping {
namespace {

// Paths a process may hold and see the same inside any lxmig container.
const char* const kPseudoDevices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
// How many paths of one process are kept: the maps of a large process list
// thousands of mappings of a few files.
constexpr size_t kMaxPathsPerProcess = 4096;
// Marks a UsedPath::how whose fd is on a mount of another mount namespace.
constexpr const char* kForeignMount = "(another mount namespace)";

// A /proc file of the process, read through its directory fd; at most
// 16 MiB ("" when it cannot be read).
std::string readAt(int dfd, const char* name) {
  UniqueFd fd(::openat(dfd, name, O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd) return out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0 && out.size() < (size_t{16} << 20))
    out.append(buf, static_cast<size_t>(n));
  return out;
}

std::string linkAt(int dfd, const std::string& name) {
  char buf[4096];
  ssize_t n = ::readlinkat(dfd, name.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::map<std::string, uint64_t> namespacesAt(int dfd) {
  std::map<std::string, uint64_t> out;
  for (const auto& ns : kAdoptNamespaces) out[ns] = internal::bracketInode(linkAt(dfd, "ns/" + ns), ns).value_or(0);
  return out;
}

// The end of a connected Unix pair (object "socket:[A]<->socket:[B]", A
// held by e.a) that `inA` names: its holder, fd and inode; inode 0 when
// the evidence does not say (a holder that is not an fd).
HandedSocket handedEnd(const Edge& e, bool inA) {
  HandedSocket s;
  const std::string mark = "<->";
  const auto at = e.object.find(mark);
  if (at == std::string::npos) return s;
  auto inode = [](const std::string& text) -> uint64_t {
    uint64_t v = 0;
    if (!startsWith(text, "socket:[") || text.back() != ']') return 0;
    return parseUint64(text.substr(8, text.size() - 9), &v) ? v : 0;
  };
  const Holder& h = inA ? e.a : e.b;
  uint64_t fd = 0;
  if (!startsWith(h.how, "fd ") || !parseUint64(h.how.substr(3), &fd) || fd > INT32_MAX) return s;
  s.inode = inode(inA ? e.object.substr(0, at) : e.object.substr(at + mark.size()));
  s.pid = h.pid;
  s.fd = static_cast<int>(fd);
  return s;
}

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return startsWith(path, dir) && (path.size() == dir.size() || path[dir.size()] == '/');
}

std::string name(pid_t pid, const std::map<pid_t, Process>& processes) {
  auto it = processes.find(pid);
  return "pid " + std::to_string(pid) + (it == processes.end() ? "" : " (" + it->second.comm + ")");
}

bool endsWithDeleted(const std::string& p) {
  const std::string deleted = " (deleted)";
  return p.size() > deleted.size() && p.compare(p.size() - deleted.size(), deleted.size(), deleted) == 0;
}

std::string parentDir(const std::string& path) {
  auto at = path.rfind('/');
  return at == 0 || at == std::string::npos ? "/" : path.substr(0, at);
}

// "tcp 10.0.0.1:80 LISTEN (fd 6)" -> the refusal for it, "" when it can go.
std::string socketProblem(const std::string& summary, const AdoptionRules& rules) {
  auto parts = split(summary, ' ');
  if (parts.size() < 2) return "";
  const bool merge = !rules.from.empty();
  std::string local = parts[1];
  auto arrow = summary.find(" -> ");
  if (arrow != std::string::npos) {
    std::string remote = summary.substr(arrow + 4);
    remote = remote.substr(0, remote.find(' '));
    if (remote != "0.0.0.0:0" && remote != "[::]:0")
      return "holds a connection (" + summary + "): " +
             (merge ? "a merge carries listening sockets and their addresses, not a connection's state"
                    : std::string("the container gets an address of its own")) +
             ", so it would break";
  }
  std::string host = local.substr(0, local.rfind(':'));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "0.0.0.0" || host == "::" || host == "::1" || startsWith(host, "127.")) return "";
  if (std::find(rules.carriedAddresses.begin(), rules.carriedAddresses.end(), host) != rules.carriedAddresses.end())
    return "";
  if (merge)
    return "has a socket bound to " + host + " (" + summary + "), an address " + rules.from +
           " does not have (bind to 0.0.0.0 or ::)";
  return "has a socket bound to the host address " + host + " (" + summary +
         "): the container has its own (bind to 0.0.0.0 or ::)";
}

}  // namespace

std::map<std::string, uint64_t> namespacesOf(const std::string& procRoot, const std::string& who) {
  UniqueFd dir(::open((procRoot + "/" + who).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return {};
  return namespacesAt(dir.get());
}

std::map<pid_t, AdoptionFacts> readAdoptionFacts(const std::string& procRoot, const std::vector<pid_t>& pids) {
  std::map<pid_t, AdoptionFacts> out;
  for (pid_t pid : pids) {
    AdoptionFacts& f = out[pid];
    f.pid = pid;
    std::string dir = procRoot + "/" + std::to_string(pid);
    int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      f.gone = true;
      continue;
    }
    // Every read below goes through dfd: a pid reused meanwhile fails them.
    UniqueFd guard(dfd);
    auto st = internal::parseStat(readAt(dfd, "stat"));
    if (!st) {
      f.gone = true;  // stat of an existing pid is always readable
      continue;
    }
    f.ppid = st->ppid;
    f.pgrp = st->pgrp;
    f.session = st->session;
    f.comm = st->comm;
    f.kernelThread = (st->flags & 0x00200000) != 0;
    f.namespaces = namespacesAt(dfd);
    for (const char* what : {"cwd", "root", "exe"}) f.paths.push_back({what, linkAt(dfd, what)});
    int fdDir = ::openat(dfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fdDir < 0) {
      f.problem = "its open files cannot be read";
      continue;
    }
    UniqueFd fdGuard(fdDir);
    // Mounts of the process's namespace: an fd on a mount outside it (passed
    // in from another mount namespace) could not be reopened by path.
    std::set<std::string> mounts;
    for (const auto& line : split(readAt(dfd, "mountinfo"), '\n')) mounts.insert(line.substr(0, line.find(' ')));
    int infoDir = ::openat(dfd, "fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    UniqueFd infoGuard(infoDir);
    for (const auto& e : listDirAt(fdDir, dir + "/fd").value_or({})) {
      if (f.paths.size() >= kMaxPathsPerProcess) break;
      std::string target = linkAt(fdDir, e.name);
      if (target.empty()) continue;
      std::string how = "fd " + e.name;
      if (target[0] == '/' && infoDir >= 0 && !mounts.empty()) {
        int info = ::openat(infoDir, e.name.c_str(), O_RDONLY | O_CLOEXEC);
        if (info >= 0) {
          UniqueFd g(info);
          char buf[4096];
          ssize_t n = ::read(info, buf, sizeof buf - 1);
          std::string text = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
          auto at = text.find("mnt_id:");
          if (at != std::string::npos) {
            std::string id(trim(text.substr(at + 7, text.find('\n', at) - at - 7)));
            if (!mounts.count(id)) how += " " + std::string(kForeignMount);
          }
        }
      }
      f.paths.push_back({how, target});
    }
    {
      std::set<std::string> seen;
      for (const auto& line : split(readAt(dfd, "maps"), '\n')) {
        auto m = internal::parseMapsLine(line);
        if (!m || m->path.empty()) continue;
        if (startsWith(m->path, "/SYSV") && std::find(f.sysvShm.begin(), f.sysvShm.end(), m->inode) == f.sysvShm.end())
          f.sysvShm.push_back(m->inode);  // a SysV mapping's inode is its shmid
        if (!seen.insert(m->path).second) continue;
        if (f.paths.size() >= kMaxPathsPerProcess) break;
        char range[64];
        std::snprintf(range, sizeof range, "map %llx-%llx", static_cast<unsigned long long>(m->start),
                      static_cast<unsigned long long>(m->end));
        f.paths.push_back({range, m->path});
      }
    }
  }
  return out;
}

// At most this many refusal lines; the rest are counted.
constexpr size_t kMaxRefusals = 40;

std::vector<pid_t> processTree(const Scan& scan, pid_t root) {
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& [pid, p] : scan.processes) children[p.ppid].push_back(pid);
  std::set<pid_t> tree;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    if (!scan.processes.count(p) || !tree.insert(p).second) continue;
    for (pid_t c : children[p]) todo.push_back(c);
  }
  return {tree.begin(), tree.end()};
}

pid_t adoptionRoot(const Scan& scan, const Group& group, pid_t requested) {
  const std::set<pid_t> in(group.members.begin(), group.members.end());
  auto parent = [&](pid_t p) -> pid_t {
    auto it = scan.processes.find(p);
    return it == scan.processes.end() ? 0 : it->second.ppid;
  };
  if (requested > 0) {
    pid_t r = requested;
    for (size_t hops = 0; hops < in.size() && in.count(parent(r)) && parent(r) != r; ++hops) r = parent(r);
    return r;
  }
  pid_t best = 0;
  size_t bestSize = 0;
  for (pid_t m : group.members) {
    if (in.count(parent(m))) continue;
    size_t n = processTree(scan, m).size();
    if (n > bestSize) best = m, bestSize = n;
  }
  return best;
}

AdoptionPlan planAdoption(const Scan& scan, pid_t root, const std::map<pid_t, AdoptionFacts>& facts,
                          const AdoptionRules& rules) {
  const auto& processes = scan.processes;
  AdoptionPlan plan;
  plan.root = root;
  plan.members = processTree(scan, root);
  const std::set<pid_t> in(plan.members.begin(), plan.members.end());
  // One line each: names and paths come from the processes and may hold
  // any byte but NUL and '/' in a name.
  auto refuse = [&](pid_t pid, const std::string& why) {
    std::string line = name(pid, processes) + " " + why;
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    plan.refusals.push_back(std::move(line));
  };
  std::set<std::string> devices, shmFiles;
  std::set<uint64_t> sysv;

  // Edges: to a process outside the tree, or of a kind the container
  // could not carry.
  const bool merge = !rules.from.empty();
  const std::string verb = merge ? "merge" : "adopt";
  auto visible = [&](const std::string& p) {
    bool yes = false;
    for (const auto& d : rules.visibleDirs) yes = yes || under(p, d);
    return yes;
  };
  std::set<std::pair<pid_t, pid_t>> told;
  std::set<uint64_t> handed;
  for (const auto& e : scan.edges) {
    const bool a = in.count(e.a.pid) > 0, b = in.count(e.b.pid) > 0;
    // A merge stays on one kernel: a FIFO or a shared file mapping is
    // reopened by path, and where both containers see that path it is
    // the same object afterwards.
    const bool named = merge && (e.kind == kFifo || e.kind == kSharedFileMap) && !e.path.empty() && visible(e.path);
    // A container's processes all share its IPC namespace; merged, they
    // share the kept one's (its System V memory is refused below).
    if (merge && e.kind == kIpcNamespace) continue;
    if (a != b && !named && merge) {
      // A connection to a process of another container of this merge: its
      // end in the tree is handed over whole.
      auto out = processes.find(a ? e.b.pid : e.a.pid);
      const bool partner = out != processes.end() && std::find(rules.unixPeersIn.begin(), rules.unixPeersIn.end(),
                                                               out->second.container) != rules.unixPeersIn.end();
      if (partner && (e.kind == std::string(kUnixStream) || e.kind == std::string(kUnixDgram))) {
        if (auto s = handedEnd(e, a); s.inode != 0) {
          if (handed.insert(s.inode).second) plan.handedSockets.push_back(s);
          continue;
        }
      }
    }
    if (a != b && !named) {
      pid_t inside = a ? e.a.pid : e.b.pid, outside = a ? e.b.pid : e.a.pid;
      if (!told.insert({inside, outside}).second) continue;
      // CRIU finds a Unix socket's peer through sock_diag, which shows
      // only the sockets of its own network namespace: the peer in the
      // other container is out of its sight, and the dump would fail.
      const bool unixPeer = merge && startsWith(e.kind, "unix-") && e.kind != std::string(kUnixShared);
      const bool pending = unixPeer && e.kind == std::string(kUnixListener) && !rules.unixPeersIn.empty();
      refuse(inside,
             "shares " + e.kind + " " + (e.path.empty() ? e.object : e.path) + " (" + (a ? e.a.how : e.b.how) +
                 ") with " + name(outside, processes) + ", which is outside the process tree of " +
                 name(plan.root, processes) + ": " + verb +
                 (pending ? " carries a connection once it is accepted, not while it waits in the listener's "
                            "queue: merge again in a moment"
                  : unixPeer && !rules.unixPeersIn.empty()
                      ? " carries a Unix connection only between the containers it merges"
                  : unixPeer ? " cannot carry a Unix socket connected to another container (this node's CRIU lacks "
                               "lxmig's merge patch: scripts/setup.sh builds it); a listener is carried, so "
                               "reconnect after the merge"
                  : merge    ? " takes whole process trees, and only FIFOs and files in directories both containers "
                               "bind may be shared with what is outside"
                             : " takes one process tree, and nothing outside it may share IPC with it"));
    } else if (a && (e.kind == kMqueue || e.kind == kIpcNamespace)) {
      refuse(e.a.pid, "shares " + e.kind + " " + e.object + " with " + name(e.b.pid, processes) + ": " + verb +
                          " does not carry POSIX message queues or IPC namespaces");
    }
  }

  // What exited since the scan is not taken (CRIU dumps the tree as it is
  // when it stops it); it may still be named as a partner above.
  plan.members.erase(std::remove_if(plan.members.begin(), plan.members.end(),
                                    [&](pid_t p) {
                                      auto f = facts.find(p);
                                      return f != facts.end() && f->second.gone;
                                    }),
                     plan.members.end());
  for (pid_t pid : plan.members) {
    auto pit = processes.find(pid);
    if (pit != processes.end() && pit->second.container != rules.from) {
      refuse(pid, merge ? "is not a process of " + rules.from
                        : "runs in container " + pit->second.container +
                              ": adopt takes processes of the host (`lxmig merge` joins containers)");
      continue;
    }
    auto fit = facts.find(pid);
    if (fit == facts.end()) {
      refuse(pid, "was not examined");
      continue;
    }
    const AdoptionFacts& f = fit->second;
    if (!f.problem.empty()) {
      refuse(pid, "cannot be examined: " + f.problem);
      continue;
    }
    if (pid == 1) refuse(pid, "is the host's init");
    if (pid == rules.agentPid) refuse(pid, "is lxmigd itself");
    if (f.kernelThread) refuse(pid, "is a kernel thread");
    for (const auto& [ns, ino] : f.namespaces) {
      auto host = rules.hostNamespaces.find(ns);
      if (host != rules.hostNamespaces.end() && ino && host->second && ino != host->second)
        refuse(pid, "is in a " + ns + " namespace of its own (" + ns + ":[" + std::to_string(ino) + "]), not " +
                        (merge ? rules.from + "'s" : std::string("the host's: adopt takes processes of the host")));
    }
    if (!in.count(f.session))
      refuse(pid, "is in the session of " + name(f.session, processes) +
                      ", outside its process tree: start the tree's first process with setsid");
    else if (!in.count(f.pgrp))
      refuse(pid, "is in the process group of " + name(f.pgrp, processes) + ", outside its process tree");

    sysv.insert(f.sysvShm.begin(), f.sysvShm.end());
    if (pit != processes.end())
      for (const auto& s : pit->second.netSockets)
        if (auto why = socketProblem(s, rules); !why.empty()) refuse(pid, why);

    // Paths: one line per directory that the container would not see.
    std::map<std::string, std::vector<std::string>> hidden;  // directory -> hows
    for (const auto& u : f.paths) {
      const std::string& p = u.path;
      if (u.how == "root") {
        if (p != "/") refuse(pid, "runs chrooted in " + p);
        continue;
      }
      if (p.empty() || p[0] != '/' || startsWith(p, "/memfd:")) continue;  // pipe:[..], socket:[..], anon_inode:..
      if (auto at = u.how.find(kForeignMount); at != std::string::npos) {
        refuse(pid, "holds " + p + " (" + u.how.substr(0, at - 1) +
                        ") opened in another mount namespace, which no container sees: close it or restart the "
                        "process from the host");
        continue;
      }
      if (u.how == "cwd" && p == "/") continue;
      if (startsWith(p, "/SYSV")) continue;  // carried: AdoptionFacts::sysvShm
      if (startsWith(p, "/dev/shm/")) {
        std::string file = p.substr(0, p.size() - (endsWithDeleted(p) ? 10 : 0));
        if (endsWithDeleted(p) || file.find('/', 9) != std::string::npos)
          refuse(pid, "uses " + p + " (" + u.how + "): only files directly in /dev/shm that still exist are carried");
        else shmFiles.insert(file);
        continue;
      }
      if (u.how.compare(0, 4, "map ") == 0 && p == "/dev/zero (deleted)") continue;  // shared anonymous memory
      if (endsWithDeleted(p)) {
        refuse(pid, "uses the deleted file " + p.substr(0, p.size() - 10) + " (" + u.how + ")");
        continue;
      }
      if (std::find(std::begin(kPseudoDevices), std::end(kPseudoDevices), p) != std::end(kPseudoDevices)) continue;
      if (startsWith(p, "/dev/pts/") || p == "/dev/tty" || p == "/dev/console") {
        refuse(pid, "uses the terminal " + p + " (" + u.how + "): start it detached (setsid, </dev/null)");
        continue;
      }
      if (startsWith(p, "/dev/") && !startsWith(p, "/dev/shm/") && !startsWith(p, "/dev/mqueue/")) {
        if (std::find(rules.offeredDevices.begin(), rules.offeredDevices.end(), p) != rules.offeredDevices.end())
          devices.insert(p);
        else refuse(pid, "uses the device " + p + " (" + u.how + "), which this node does not offer to containers");
        continue;
      }
      if (!visible(p)) hidden[u.how == "cwd" ? p : parentDir(p)].push_back(u.how);
    }
    for (const auto& [dir, hows] : hidden) {
      std::string list;
      for (size_t i = 0; i < hows.size() && i < 3; ++i) list += (i ? ", " : "") + hows[i];
      if (hows.size() > 3) list += ", ...";
      refuse(pid, "uses " + dir + " (" + list + "), which " +
                      (merge ? rules.into + " does not see (a merge carries the system directories, /dev/shm and "
                                            "the binds both containers have)"
                             : "the container would not see (add --bind " + dir + ")"));
    }
  }
  if (plan.refusals.size() > kMaxRefusals) {
    size_t more = plan.refusals.size() - kMaxRefusals;
    plan.refusals.resize(kMaxRefusals);
    plan.refusals.push_back("... and " + std::to_string(more) + " more reasons");
  }
  plan.devices.assign(devices.begin(), devices.end());
  plan.shmFiles.assign(shmFiles.begin(), shmFiles.end());
  plan.sysvShm.assign(sysv.begin(), sysv.end());
  return plan;
}

}  // namespace lxmig::grouping
