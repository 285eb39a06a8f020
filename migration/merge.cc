#include "lxmig/migration/merge.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "journal.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/base/sysvipc.h"
#include "lxmig/grouping/adoption.h"
#include "lxmig/grouping/ipc_graph.h"
#include "lxmig/migration/source.h"
#include "lxmig/net/cutover.h"
#include "lxmig/node/criu_cache.h"
#include "lxmig/proto/vocabulary.h"
#include "tasks.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "merge";
constexpr size_t kMaxContainers = 64;
// Audit events that let settleMerges finish what a stopped agent left: the
// originals left stopped by the dump, and the pids of their copies.
constexpr const char* kStoppedEvent = "stopped in the merged container:";
constexpr const char* kCopiesEvent = "copies in ";  // "copies in A: 11000 11001"

// One container merged into the kept one, as checked.
struct Part {
  std::string name;
  node::Spec spec;
  pid_t init = 0;
  std::vector<pid_t> roots;           // host pids of the trees under its init
  std::vector<std::string> shmFiles;  // /dev/shm files its trees use
  std::set<pid_t> inner;              // the pids of its processes inside it
  // Per tree (as roots): its ends of Unix connections to another container
  // of the merge, handed over whole by the dump and the restore.
  std::vector<std::vector<container::HandedUnixSocket>> handed;
  // Its IPC namespace holds System V objects (made again, same ids, in the
  // kept container's: copyIpc), and whether its trees map System V memory.
  bool sysvObjects = false, sysvMapped = false;
};

// Where a merge lists the System V objects it made in the kept container
// (lxmig-lxc copy-ipc), for a rollback, also one after an agent restart.
std::string ipcMadeList(node::Node& node, const std::string& id) { return node.imagesRoot() + "/" + id + "/ipc-made"; }

// Host pids of a container's processes but its init.
std::vector<pid_t> workload(node::Node& node, const std::string& name, pid_t init) {
  std::vector<pid_t> out;
  for (pid_t p : node.lxc().pids(name).value_or(std::vector<pid_t>{}))
    if (p != init) out.push_back(p);
  return out;
}

// The kept container's processes whose pid inside is in `inner` (the copies
// restored into it). `stoppedOnly`: those still stopped as CRIU left them
// (a rollback never touches a process of the kept container's own that
// took one of those pids meanwhile).
std::vector<pid_t> copiesIn(node::Node& node, const std::string& kept, const std::set<pid_t>& inner, bool stoppedOnly) {
  std::vector<pid_t> out;
  const pid_t init = node.lxc().initPid(kept);
  for (pid_t p : workload(node, kept, init)) {
    if (!inner.count(innerPid(p))) continue;
    auto f = statFields(p);
    if (!stoppedOnly || (!f.empty() && f[0] == "T")) out.push_back(p);
  }
  return out;
}

// The audit row of one container merged.
v1::MigrationReport newReport(const std::string& container, const std::string& node, int64_t startedMs) {
  v1::MigrationReport rep;
  rep.set_id(newMigrationId());
  rep.set_container(container);
  rep.set_source(node);
  rep.set_target(node);
  rep.set_mode(v1::MODE_MERGE);
  rep.set_reason("merge");
  rep.set_started_ms(startedMs);
  return rep;
}

void signalAll(const std::vector<pid_t>& pids, int sig) {
  for (pid_t p : pids) ::kill(p, sig);
}

std::string joinPids(const std::set<pid_t>& pids) {
  std::string s;
  for (pid_t p : pids) s += (s.empty() ? "" : " ") + std::to_string(p);
  return s;
}

bool sameBind(const container::Bind& a, const container::Bind& b) {
  return a.hostPath == b.hostPath && a.containerPath == b.containerPath;
}

// How far a process's clocks read ahead of the host's (its time namespace's
// CLOCK_MONOTONIC offset; the boottime one moves with it), in ns; 0 in the
// host's time namespace or when unreadable.
int64_t clockOffsetNs(pid_t pid) {
  for (const auto& line : split(readFile("/proc/" + std::to_string(pid) + "/timens_offsets").value_or(""), '\n')) {
    std::vector<std::string> f;
    for (const auto& w : split(line, ' '))
      if (!w.empty()) f.push_back(w);
    if (f.size() != 3 || f[0] != "monotonic") continue;
    const int64_t sec = std::strtoll(f[1].c_str(), nullptr, 10), nsec = std::strtoll(f[2].c_str(), nullptr, 10);
    return sec * 1000000000 + nsec;
  }
  return 0;
}

// The binds and devices of the kept container and of the parts checked so
// far, by their path inside: the host path and whose it is.
struct Mounted {
  std::string host, owner;
};
using Mounts = std::map<std::string, Mounted>;

Mounts mountsOf(const node::Spec& kept) {
  Mounts m;
  for (const auto& d : grouping::kContainerSystemDirs) m[d] = {d, "every container"};
  for (const auto& b : kept.binds) m[b.containerPath] = {b.hostPath, kept.name};
  for (const auto& d : kept.devices) m[d.containerPath] = {d.hostPath, kept.name};
  return m;
}

// The binds and devices of `from` the kept container lacks: mounted into it
// before the restore (the copies see them at once), taken away again by a
// rollback.
struct NewMounts {
  std::vector<container::Bind> binds;
  std::vector<container::DeviceParam> devices;
};

NewMounts newMounts(node::Node& node, const node::Spec& from, const node::Spec& into) {
  NewMounts m;
  for (const auto& b : from.binds) {
    bool has = false;
    for (const auto& k : into.binds) has = has || sameBind(b, k);
    if (!has) m.binds.push_back(b);
  }
  for (const auto& d : node.paramsFor(from).devices) {
    bool has = false;
    for (const auto& k : into.devices) has = has || (k.hostPath == d.hostPath && k.containerPath == d.containerPath);
    if (!has) m.devices.push_back(d);
  }
  return m;
}

Status addMounts(node::Node& node, const NewMounts& m, const std::string& into) {
  for (const auto& b : m.binds) LXMIG_RETURN_IF_ERROR(node.lxc().bindIn(into, b));
  for (const auto& d : m.devices) {
    LXMIG_RETURN_IF_ERROR(node.lxc().allowDevice(into, d, true));
    LXMIG_RETURN_IF_ERROR(node.lxc().bindIn(into, {d.hostPath, d.containerPath, false}, true));
  }
  return okStatus();
}

void takeBackMounts(node::Node& node, const NewMounts& m, const std::string& into) {
  for (const auto& b : m.binds)
    if (Status st = node.lxc().unbindIn(into, b.containerPath); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  for (const auto& d : m.devices) {
    if (Status st = node.lxc().unbindIn(into, d.containerPath); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
    if (Status st = node.lxc().allowDevice(into, d, false); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  }
}

// The kept container's network namespace, where the merged containers'
// addresses go.
std::string netnsOf(node::Node& node, const std::string& name) {
  return "/proc/" + std::to_string(node.lxc().initPid(name)) + "/ns/net";
}

int prefixLen(node::Node& node, const node::Spec& s) { return node.paramsFor(s).prefixLen; }

// Gives the kept container's eth0 the merged container's addresses (before
// the restore: a listening socket bound to one is restored bound to it).
Status addAddresses(node::Node& node, const node::Spec& from, const node::Spec& into) {
  for (const auto& a : from.addresses())
    LXMIG_RETURN_IF_ERROR(net::addAddressIn(netnsOf(node, into.name), "eth0", a, prefixLen(node, into))
                              .withContext("give " + into.name + " the address of " + from.name));
  return okStatus();
}

// Rollback: the kept container loses the addresses it was given for `from`
// (those it had of its own stay), and `from`'s traffic flows again.
void takeBackAddresses(node::Node& node, const node::Spec& from, const node::Spec& into) {
  const auto own = into.addresses();
  for (const auto& a : from.addresses()) {
    if (std::find(own.begin(), own.end(), a) == own.end())
      if (Status st = net::removeAddressIn(netnsOf(node, into.name), "eth0", a, prefixLen(node, into)); !st.ok())
        LXMIG_LOG(kWarn, kLog) << st.toString();
    if (Status st = node.resumeTraffic(a); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  }
}

// After the commit: what the merged container held goes to the kept one:
// its addresses (announced from the kept container's interface once the
// merged one is gone), its firewall rules, i.e. published ports, and its
// environment; then the merged container goes.
void handOver(node::Node& node, const node::Spec& from, node::Spec& into, Journal& journal) {
  if (auto rules = node.firewall().listRules(from.name); rules.ok())
    for (const auto& r : *rules)
      if (auto added = node.firewall().addRule(into.name, r.text); !added.ok())
        journal.warn("firewall rule `" + r.text + "` for " + into.name + ": " + added.status().message());
  for (const auto& e : from.env)
    if (std::find(into.env.begin(), into.env.end(), e) == into.env.end()) into.env.push_back(e);
  for (const auto& a : from.addresses()) {
    const auto own = into.addresses();
    if (std::find(own.begin(), own.end(), a) == own.end()) into.extraIps.push_back(a);
  }
  // Mounted into it before the restore; its spec has them from now on (a
  // target of its next migration binds them from the start).
  const NewMounts mounts = newMounts(node, from, into);
  into.binds.insert(into.binds.end(), mounts.binds.begin(), mounts.binds.end());
  for (const auto& d : mounts.devices) into.devices.push_back({d.hostPath, d.containerPath});
  if (Status saved = node.saveSpec(into); !saved.ok()) journal.warn(saved.message());
  // Destroyed, the merged container's interface leaves the bridge.
  if (Status gone = node.lxc().destroy(from.name); !gone.ok())
    journal.warn("remove the container `" + from.name + "`: " + gone.message());
  node.dropNetState(from);
  // Added before the restore; again for a merge an agent restart settles.
  if (Status st = addAddresses(node, from, into); !st.ok()) journal.warn(st.message());
  for (const auto& a : from.addresses()) {
    // The route to the address stays: it leads to the same bridge.
    if (Status st = node.firewall().addContainer(into.name, a); !st.ok()) journal.warn(st.message());
    if (Status st = net::announceIn(netnsOf(node, into.name), "eth0", a); !st.ok()) journal.warn(st.message());
    if (Status st = node.resumeTraffic(a); !st.ok()) journal.warn(st.message());
  }
}

// What the IPC namespace of the container whose init is `init` holds
// beyond its processes' open files and mappings: its System V objects and
// its POSIX message queues. They live in the namespace, which ends with the
// merged container, and its processes name them by id or name: the System V
// objects are made again with their ids in the kept container's namespace
// (with lxmig's CRIU patch), the POSIX queues are refused.
struct IpcObject {
  std::string kind;  // shm, sem, msg
  long long key = 0;
  long long id = 0;
  unsigned mode = 0;  // with the kernel's flags (SHM_DEST 01000: removed while attached)
};

struct IpcHeld {
  size_t shm = 0, sem = 0, msg = 0;
  std::vector<IpcObject> objects;
  std::vector<std::string> queues;  // names in its /dev/mqueue
};

Result<IpcHeld> ipcHeld(pid_t init) {
  IpcHeld held;
  const std::string proc = "/proc/" + std::to_string(init);
  // /proc/sysvipc shows the reading thread's IPC namespace.
  LXMIG_RETURN_IF_ERROR(inNamespace(proc + "/ns/ipc", CLONE_NEWIPC, [&]() -> Status {
    for (auto [table, count] : {std::pair{"shm", &held.shm}, {"sem", &held.sem}, {"msg", &held.msg}}) {
      LXMIG_ASSIGN_OR_RETURN(auto rows, readSysvTable(table));
      *count = rows.size();
      for (const SysvRow& r : rows) held.objects.push_back({table, r.key, r.id, r.perms});
    }
    return okStatus();
  }));
  std::string shown;
  auto dir = openDirBeneathRootOf(init, "dev/mqueue", &shown);
  if (!dir.ok()) return dir.status().code() == Code::kNotFound ? Result<IpcHeld>(held) : dir.status();
  LXMIG_ASSIGN_OR_RETURN(auto entries, listDirAt(dir->get(), shown));
  for (const auto& e : entries) held.queues.push_back(e.name);
  std::sort(held.queues.begin(), held.queues.end());
  return held;
}

// Everything that keeps `part` from joining `kept`, one line each.
// `furthestAhead`: the container whose clocks read furthest ahead, the one
// to keep when clocks differ.
// `ipcClaimed`: the System V objects the parts checked before bring into
// the kept container (this part's are added).
std::vector<std::string> checkPart(node::Node& node, const grouping::Scan& scan, const node::Spec& kept, pid_t keptInit,
                                   const std::string& furthestAhead, const std::set<pid_t>& taken, Mounts& mounted,
                                   const std::vector<std::string>& merged, std::vector<IpcObject>& ipcClaimed,
                                   Part& part) {
  std::vector<std::string> refusals;
  auto refuse = [&](const std::string& why) { refusals.push_back(part.name + ": " + why); };
  // The restore into the kept container joins its namespaces but its user
  // namespace: not done for containers that have one of their own.
  if (part.spec.idmapSize > 0 || kept.idmapSize > 0)
    refuse("it or " + kept.name +
           " has a user namespace of its own (lxmig run --userns), which a merge does not join: they stay apart");
  if (!part.spec.lxmigInit) {
    refuse(
        "its pid 1 is its own command (it was started by an lxmig without lxmig-init): restart it with lxmig run, "
        "and its processes can be merged");
    return refusals;
  }
  // A container restored by CRIU has a time namespace of its own, whose
  // clocks continue from where they were dumped. Merged, the processes
  // take the kept container's: they may only see their clocks go forward
  // (as after a pause), never back.
  const int64_t ahead = clockOffsetNs(part.init) - clockOffsetNs(keptInit);
  if (ahead > 0)
    refuse("its clocks read " + std::to_string(ahead / 1000000) + "." + std::to_string(ahead / 100000 % 10) +
           " ms ahead of " + kept.name + "'s (each container that was migrated has clocks of its own): merged, its " +
           "processes would see CLOCK_MONOTONIC go back; merge into " + furthestAhead + " instead (--name " +
           furthestAhead + ")");
  // Its binds and devices join the kept container's (mounted into it before
  // the restore): side by side with those it has, never over or inside one.
  auto mountAt = [&](const std::string& host, const std::string& path, const std::string& what) {
    for (const auto& [at, held] : mounted) {
      if (at == path) {
        if (held.host != host)
          refuse("has " + what + " " + host + " at " + path + ", where " + held.owner + " has " + held.host);
        return;
      }
      if (startsWith(path, at + "/") || startsWith(at, path + "/")) {
        refuse("has " + what + " " + host + " at " + path + ", which would nest with " + held.owner + "'s " + at +
               " (a merge adds binds side by side)");
        return;
      }
    }
    mounted[path] = {host, part.name};
  };
  for (const auto& b : part.spec.binds) mountAt(b.hostPath, b.containerPath, "the bind");
  for (const auto& d : part.spec.devices) {
    bool has = false;
    for (const auto& k : kept.devices) has = has || (k.hostPath == d.hostPath && k.containerPath == d.containerPath);
    if (!has && !node.lxc().canAllowDevices(kept.name))
      refuse("has the device " + d.hostPath + " at " + d.containerPath + ", which " + kept.name +
             " has not, and this host cannot add a device to a running container (no cgroup v1 devices controller)");
    mountAt(d.hostPath, d.containerPath, "the device");
  }
  grouping::AdoptionRules rules;
  rules.from = part.name;
  rules.into = kept.name;
  rules.agentPid = ::getpid();
  rules.hostNamespaces = grouping::namespacesOf("/proc", std::to_string(part.init));
  rules.carriedAddresses = part.spec.addresses();
  // A Unix connection to another container of the merge is carried when
  // CRIU can hand its end over whole (lxmig's merge patch).
  if (node::criuHandsOverUnixPeers())
    for (const auto& n : merged)
      if (n != part.name) rules.unixPeersIn.push_back(n);
  // What the kept container sees at the same path as this one: the system
  // directories, and the binds and devices of both.
  rules.visibleDirs = grouping::kContainerSystemDirs;
  for (const auto& b : part.spec.binds) rules.visibleDirs.push_back(b.containerPath);
  for (const auto& d : kept.devices) rules.offeredDevices.push_back(d.containerPath);
  for (const auto& d : part.spec.devices) rules.offeredDevices.push_back(d.containerPath);

  std::set<pid_t> covered;
  const std::vector<pid_t> all = workload(node, part.name, part.init);
  for (pid_t p : all) {
    auto it = scan.processes.find(p);
    if (it != scan.processes.end() && it->second.ppid == part.init) part.roots.push_back(p);
  }
  if (all.size() > kMaxMembers)
    refuse("has " + std::to_string(all.size()) + " processes; a merge takes at most " + std::to_string(kMaxMembers));
  for (pid_t root : part.roots) {
    auto tree = grouping::processTree(scan, root);
    covered.insert(tree.begin(), tree.end());
    auto facts = grouping::readAdoptionFacts("/proc", tree);
    grouping::AdoptionPlan plan = grouping::planAdoption(scan, root, facts, rules);
    for (const auto& r : plan.refusals) refuse(r);
    auto& handed = part.handed.emplace_back();
    for (const auto& h : plan.handedSockets) handed.push_back({h.pid, h.fd, h.inode});
    if (!plan.sysvShm.empty() && !node::criuDumpsSysvOutside())
      refuse("its tree of pid " + std::to_string(innerPid(root)) +
             " maps System V shared memory, which a merge carries only with lxmig's CRIU patch (scripts/setup.sh "
             "builds it)");
    part.sysvMapped = part.sysvMapped || !plan.sysvShm.empty();
    // CRIU dumps an open tun device only with the network namespace it
    // belongs to, which a merge leaves behind ("Net namespace is required
    // to dump tun link").
    for (const auto& d : plan.devices)
      if (d == "/dev/net/tun")
        refuse("its tree of pid " + std::to_string(innerPid(root)) +
               " holds /dev/net/tun open: CRIU dumps a tun device only with its network namespace, which a merge "
               "does not carry (lxmig migrate carries it)");
    for (const auto& f : plan.shmFiles) {
      if (shmFileExists(keptInit, f)) refuse("uses " + f + ", and " + kept.name + " has a file of that name");
      part.shmFiles.push_back(f);
    }
  }
  for (pid_t p : all) {
    const pid_t in = innerPid(p);
    if (in > 0) part.inner.insert(in);
    auto it = scan.processes.find(p);
    const std::string comm = it == scan.processes.end() ? "?" : it->second.comm;
    if (!covered.count(p) && it != scan.processes.end())
      refuse("pid " + std::to_string(in) + " (" + comm +
             ") is not below its init (an lxmig exec still running?): a merge takes the trees of the init");
    if (taken.count(in))
      refuse("pid " + std::to_string(in) + " (" + comm + ") is taken in " + kept.name +
             " already: the two workloads' pid ranges overlap");
  }
  if (part.roots.empty()) refuse("runs no process besides its init");
  auto keptHeld = ipcHeld(keptInit);
  if (auto held = ipcHeld(part.init); !held.ok() || !keptHeld.ok()) {
    refuse("its IPC namespace, or " + kept.name +
           "'s, cannot be read: " + (held.ok() ? keptHeld.status() : held.status()).message());
  } else if (held->shm + held->sem + held->msg > 0 && node::criuDumpsSysvOutside()) {
    // Made again in the kept container's namespace with the same ids (its
    // processes name them by id): an id or key taken there is refused.
    part.sysvObjects = true;
    std::vector<IpcObject> there = keptHeld->objects;
    there.insert(there.end(), ipcClaimed.begin(), ipcClaimed.end());
    for (const auto& o : held->objects) {
      const std::string what = "System V " + o.kind + " " + std::to_string(o.id);
      if (o.kind == "shm" && (o.mode & 01000))  // SHM_DEST
        refuse("its " + what + " was removed (IPC_RMID) while still attached: a merge cannot make it again");
      for (const auto& k : there)
        if (k.kind == o.kind && (k.id == o.id || (o.key != 0 && k.key == o.key))) {
          refuse("its " + what + (k.id == o.id ? "" : " (key " + std::to_string(o.key) + ")") + " has the " +
                 (k.id == o.id ? "id" : "key") + " of one in " + kept.name +
                 "'s IPC namespace (its own, or another merged container's), and its processes name it by that: "
                 "remove that one first, or merge into a container that has none");
          break;
        }
      ipcClaimed.push_back(o);
    }
  } else if (held->shm + held->sem + held->msg > 0) {
    refuse("its IPC namespace holds " + std::to_string(held->shm) + " System V shared memory segment(s), " +
           std::to_string(held->sem) + " semaphore set(s) and " + std::to_string(held->msg) +
           " message queue(s), which a merge carries only with lxmig's CRIU patch (scripts/setup.sh builds it; "
           "without, they end with " +
           part.name + "'s IPC namespace, and its processes name them by id)");
  } else if (!held->queues.empty()) {
    std::string names;
    for (size_t i = 0; i < held->queues.size() && i < 3; ++i) names += (i ? ", " : "") + quote(held->queues[i], 64);
    if (held->queues.size() > 3) names += ", ...";
    refuse("its /dev/mqueue holds " + std::to_string(held->queues.size()) + " POSIX message queue(s) (" + names +
           "), which a merge does not carry (they end with " + part.name + "'s IPC namespace)");
  }
  for (auto& line : refusals)
    for (char& c : line)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return refusals;
}

}  // namespace

Result<v1::MergeReply> merge(node::Node& node, const v1::MergeRequest& req, const ProgressFn& progress) {
  const auto& cfg = node.config();
  if (req.containers_size() < 2 || static_cast<size_t>(req.containers_size()) > kMaxContainers)
    return invalidArgument("merge takes 2 to " + std::to_string(kMaxContainers) + " containers");
  std::vector<std::string> names(req.containers().begin(), req.containers().end());
  for (const auto& n : names) LXMIG_RETURN_IF_ERROR(checkContainerName(n));
  if (std::set<std::string>(names.begin(), names.end()).size() != names.size())
    return invalidArgument("a container is named twice");
  const std::string keptName = req.name().empty() ? names.front() : req.name();
  LXMIG_RETURN_IF_ERROR(checkContainerName(keptName));
  if (std::find(names.begin(), names.end(), keptName) == names.end())
    return invalidArgument("--name " + keptName +
                           " is not one of the containers: the merged container is one of them, which keeps running "
                           "while the others join it");
  std::map<std::string, node::Spec> specs;
  for (const auto& n : names) {
    auto s = node.spec(n);
    if (!s.ok()) return notFound("no container `" + n + "` on " + cfg.node + " (a merge joins containers of one node)");
    if (node.lxc().state(n) != container::RunState::kRunning)
      return failedPrecondition("container `" + n + "` is " + container::runStateName(node.lxc().state(n)) +
                                ", not RUNNING");
    specs[n] = std::move(*s);
  }
  // Every name is held until the end: nothing else migrates, removes or
  // merges them meanwhile.
  std::vector<node::Reservation> held;
  for (const auto& n : names) {
    auto r = node.reserve(n, "being merged");
    if (!r.ok()) return r.status();
    held.push_back(std::move(*r));
  }

  // 1. CHECK (all parts before any is touched)
  const int64_t t0 = monotonicNs();
  const int64_t startedMs = wallMs();
  node::Spec& kept = specs[keptName];
  const pid_t keptInit = node.lxc().initPid(keptName);
  grouping::Scan scan = grouping::scanNode({});
  v1::MergeReply reply;
  reply.set_name(keptName);
  reply.set_ip(kept.ip);
  if (!kept.lxmigInit)
    reply.add_refusals(keptName +
                       ": its pid 1 is its own command (it was started by an lxmig without lxmig-init), which would "
                       "not reap the processes that join it: restart it with lxmig run");
  std::set<pid_t> taken;  // pids inside the kept container, and of the parts checked before
  for (pid_t p : node.lxc().pids(keptName).value_or(std::vector<pid_t>{})) taken.insert(innerPid(p));
  std::string furthestAhead = keptName;
  for (const auto& n : names)
    if (clockOffsetNs(node.lxc().initPid(n)) > clockOffsetNs(node.lxc().initPid(furthestAhead))) furthestAhead = n;
  std::vector<Part> parts;
  Mounts mounted = mountsOf(kept);
  std::vector<IpcObject> ipcClaimed;
  for (const auto& n : names) {
    if (n == keptName) continue;
    Part part;
    part.name = n;
    part.spec = specs[n];
    part.init = node.lxc().initPid(n);
    for (const auto& r : checkPart(node, scan, kept, keptInit, furthestAhead, taken, mounted, names, ipcClaimed, part))
      reply.add_refusals(r);
    taken.insert(part.inner.begin(), part.inner.end());
    for (pid_t p : part.inner) reply.add_pids(p);
    parts.push_back(std::move(part));
  }
  const int64_t checkMs = (monotonicNs() - t0) / 1000000;
  if (req.dry_run()) {  // checked, nothing recorded
    for (const auto& a : kept.extraIps) reply.add_extra_ips(a);
    for (const auto& part : parts)
      for (const auto& a : part.spec.addresses()) reply.add_extra_ips(a);
    return reply;
  }
  if (reply.refusals_size() > 0) {
    // One refused row per container that would have joined.
    for (const auto& part : parts) {
      v1::MigrationReport rep = newReport(part.name, cfg.node, startedMs);
      Journal journal(node.audit(), rep);
      journal.begin("merge");
      journal.addPhase(v1::PHASE_CHECK, startedMs, checkMs, 0, "into=" + keptName);
      for (const auto& r : reply.refusals()) journal.event("info", "refused: " + r);
      journal.finish(v1::RESULT_REFUSED, failedPrecondition(reply.refusals(0)), checkMs);
    }
    return reply;
  }
  reply.clear_pids();

  for (Part& part : parts) {
    v1::MigrationReport& rep = *reply.add_reports();
    rep = newReport(part.name, cfg.node, wallMs());
    const int64_t partStart = monotonicNs();
    Journal journal(node.audit(), rep);
    journal.begin("merge");
    journal.addPhase(v1::PHASE_CHECK, startedMs, checkMs, 0,
                     "into=" + keptName + " processes=" + std::to_string(part.inner.size()) +
                         " trees=" + std::to_string(part.roots.size()) + " scan_ms=" + std::to_string(scan.durationMs));
    auto total = [&] { return (monotonicNs() - partStart) / 1000000; };
    const std::string images = node.imagesRoot() + "/" + rep.id();
    Progressor prog(progress, rep.id(), part.name);

    // 2. DUMP: each tree stays stopped from here until 4 or the abort. Its
    // addresses are blocked meanwhile: a connection the stopped original
    // accepted would be lost with it; one tried again after the commit
    // reaches the copy.
    const int64_t frozenAt = monotonicNs();
    Status st;
    for (const auto& a : part.spec.addresses()) {
      if (st.ok()) st = node.holdTraffic(a);
      if (st.ok()) st = node.silenceTraffic(a);
    }
    std::vector<Task> stopped;
    NewMounts mounts;  // what the restore mounted into the kept container
    uint64_t bytes = 0;
    {
      PhaseClock dump(journal, v1::PHASE_DUMP);
      prog.phase(v1::PHASE_DUMP, 0);
      ImagesWatch watch(prog, images);
      for (size_t k = 0; st.ok() && k < part.roots.size(); ++k) {
        const std::string dir = images + "/" + std::to_string(k);
        st = node.lxc().dumpIn(part.name, innerPid(part.roots[k]), dir, part.handed[k], part.sysvMapped);
        auto tree = treeOf(part.roots[k]);
        stopped.insert(stopped.end(), tree.begin(), tree.end());
        // FIFOs stay on this kernel with the bytes in them: restoring what
        // CRIU read from them would send those bytes twice.
        ::unlink((dir + "/fifo-data.img").c_str());
        bytes += treeBytes(dir);
      }
      size_t handed = 0;
      for (const auto& h : part.handed) handed += h.size();
      dump.end(st, bytes,
               "trees=" + std::to_string(part.roots.size()) + " tasks=" + std::to_string(stopped.size()) +
                   " unix_handed=" + std::to_string(handed));
    }
    rep.set_bytes(bytes);
    if (!stopped.empty()) {
      // The trees as dumped (a short-lived child seen by the check may be
      // gone, another born): their pids inside name the copies.
      part.inner.clear();
      for (const auto& t : stopped)
        if (pid_t in = innerPid(t.pid); in > 0) part.inner.insert(in);
      journal.event("info", std::string(kStoppedEvent) + tasksText(stopped));
      journal.event("info", std::string(kCopiesEvent) + keptName + ": " + joinPids(part.inner));
    }
    auto abort = [&](const Status& why) {
      PhaseClock ab(journal, v1::PHASE_ABORT);
      prog.phase(v1::PHASE_ABORT, 0);
      // Copies restored so far never ran: they go, the originals continue.
      auto copies = copiesIn(node, keptName, part.inner, true);
      signalAll(copies, SIGKILL);
      if (part.sysvObjects)
        if (Status d = node.lxc().dropIpc(keptName, ipcMadeList(node, rep.id())); !d.ok()) journal.warn(d.message());
      takeBackAddresses(node, part.spec, kept);
      takeBackMounts(node, mounts, keptName);
      signalTree(stopped, SIGCONT);
      for (size_t k = 0; k < part.roots.size(); ++k)
        keepLogs(images + "/" + std::to_string(k), cfg.stateDir + "/logs/" + rep.id() + "/" + std::to_string(k));
      (void)removeTree(images);
      ab.end(okStatus(), 0, "copies killed=" + std::to_string(copies.size()) + "; " + part.name + " continued");
      journal.finish(v1::RESULT_ABORTED, why, total());
    };
    if (!st.ok()) {
      abort(st);
      return reply;
    }

    // 3. RESTORE
    {
      PhaseClock restore(journal, v1::PHASE_RESTORE);
      prog.phase(v1::PHASE_RESTORE, bytes);
      if (cfg.failAt == "merge-restore") ::unlink((images + "/0/pstree.img").c_str());  // testing: CRIU fails
      mounts = newMounts(node, part.spec, kept);
      st = addMounts(node, mounts, keptName);
      if (st.ok()) st = addAddresses(node, part.spec, kept);
      if (st.ok()) st = copyShmFiles(part.shmFiles, part.init, keptInit);
      if (st.ok() && part.sysvObjects) st = node.lxc().copyIpc(part.name, keptName, ipcMadeList(node, rep.id()));
      for (size_t k = 0; st.ok() && k < part.roots.size(); ++k)
        st = node.lxc().restoreInto(keptName, images + "/" + std::to_string(k), part.handed[k], part.sysvMapped);
      restore.end(st, 0,
                  std::string("sysv=") + (part.sysvObjects ? "copied" : "none") +
                      " shm_files=" + std::to_string(part.shmFiles.size()) + " addresses=" +
                      std::to_string(part.spec.addresses().size()) + " binds=" + std::to_string(mounts.binds.size()) +
                      " devices=" + std::to_string(mounts.devices.size()));
    }
    if (!st.ok()) {
      abort(st);
      return reply;
    }
    if (cfg.failAt == "merge-crash") {
      LXMIG_LOG(kError, kLog) << "injected crash after the restore (lxmigd --fail-at merge-crash)";
      std::_Exit(70);
    }

    // 4. COMMIT
    {
      PhaseClock commit(journal, v1::PHASE_COMMIT);
      prog.phase(v1::PHASE_COMMIT, 0);
      signalTree(stopped, SIGKILL);
      awaitGone(stopped, 2000);
      // The commit point: from here the copies are the ones.
      auto copies = copiesIn(node, keptName, part.inner, false);
      signalAll(copies, SIGCONT);
      rep.set_downtime_ms((monotonicNs() - frozenAt) / 1000000);
      for (pid_t p : copies) reply.add_pids(innerPid(p));
      handOver(node, part.spec, kept, journal);
      (void)removeTree(images);
      commit.end(okStatus(), 0, "processes=" + std::to_string(copies.size()) + " into=" + keptName);
    }
    journal.finish(v1::RESULT_COMMITTED, okStatus(), total());
    LXMIG_LOG(kInfo, kLog) << part.name << ": " << part.inner.size() << " processes continue in " << keptName;
  }
  std::sort(reply.mutable_pids()->begin(), reply.mutable_pids()->end());
  for (const auto& a : kept.extraIps) reply.add_extra_ips(a);
  return reply;
}

int settleMerges(node::Node& node) {
  int settled = 0;
  for (const auto& m : interruptedRows(node.audit(), v1::MODE_MERGE)) {
    std::vector<Task> stopped;
    std::string kept;
    std::set<pid_t> inner;
    auto parsePid = [](const std::string& s, pid_t* out) {
      uint64_t v = 0;
      if (!parseUint64(s, &v) || v == 0 || v >= (1u << 22)) return false;
      *out = static_cast<pid_t>(v);
      return true;
    };
    if (auto events = node.audit().events(m.id); events.ok())
      for (const auto& e : *events) {
        if (startsWith(e.text, kStoppedEvent)) {
          stopped = parseTasks(e.text.substr(std::string(kStoppedEvent).size()));
        } else if (startsWith(e.text, kCopiesEvent)) {
          auto colon = e.text.find(':');
          if (colon == std::string::npos) continue;
          kept = e.text.substr(std::string(kCopiesEvent).size(), colon - std::string(kCopiesEvent).size());
          for (const auto& item : split(e.text.substr(colon + 1), ' ')) {
            pid_t pid = 0;
            if (parsePid(std::string(trim(item)), &pid)) inner.insert(pid);
          }
        }
      }
    const bool originalsAlive = anyAlive(stopped);
    v1::MigrationReport rep = reportOf(m, v1::MODE_MERGE);
    Journal journal(node.audit(), rep);
    const bool keptOk = checkContainerName(kept).ok();
    std::vector<pid_t> copies =
        keptOk ? copiesIn(node, kept, inner, originalsAlive || stopped.empty()) : std::vector<pid_t>{};
    if (originalsAlive || stopped.empty()) {
      // Before the commit the originals are the ones.
      signalAll(copies, SIGKILL);
      if (keptOk && checkMigrationId(m.id).ok()) (void)node.lxc().dropIpc(kept, ipcMadeList(node, m.id));
      auto from = node.spec(m.container);
      auto into = keptOk ? node.spec(kept) : Result<node::Spec>(notFound(kept));
      if (from.ok() && into.ok()) {
        takeBackAddresses(node, *from, *into);
        takeBackMounts(node, newMounts(node, *from, *into), kept);
      }
      if (from.ok() && !into.ok())
        for (const auto& a : from->addresses()) (void)node.resumeTraffic(a);
      signalTree(stopped, SIGCONT);
      journal.event("warn", "the agent stopped during the merge: " + m.container + " continues as it was");
      journal.finish(v1::RESULT_ABORTED, Status(Code::kAborted, "interrupted by an agent restart; rolled back"), -1);
    } else {
      signalAll(copies, SIGCONT);
      auto from = node.spec(m.container);
      auto into = keptOk ? node.spec(kept) : Result<node::Spec>(notFound(kept));
      if (from.ok() && into.ok()) handOver(node, *from, *into, journal);
      journal.event("warn", "the agent stopped during the merge's commit: the processes run in " + kept);
      journal.finish(v1::RESULT_COMMITTED, okStatus(), -1);
    }
    ++settled;
  }
  return settled;
}

}  // namespace lxmig::migration
