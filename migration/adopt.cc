#include "lxmig/migration/adopt.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "journal.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/sysvipc.h"
#include "lxmig/grouping/adoption.h"
#include "lxmig/grouping/ipc_graph.h"
#include "lxmig/migration/source.h"
#include "lxmig/proto/vocabulary.h"
#include "tasks.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "adopt";
// A tree that maps System V shared memory is dumped with the host's whole
// IPC namespace: refused when the other segments exceed this.
constexpr uint64_t kMaxOtherSegmentBytes = uint64_t{64} << 20;
// The audit event naming the host tasks left stopped by the dump.
constexpr const char* kStoppedEvent = "stopped on the host:";

// Bytes of the host's System V segments other than `used`: CRIU dumps the
// whole IPC namespace with a tree that maps any (they are removed from the
// container right after the restore, but dumped and restored first).
uint64_t otherSegmentBytes(const std::vector<uint64_t>& used) {
  uint64_t total = 0;
  for (const SysvRow& r : readSysvTable("shm").value_or(std::vector<SysvRow>{}))
    if (std::find(used.begin(), used.end(), static_cast<uint64_t>(r.id)) == used.end())
      total += static_cast<uint64_t>(std::max<int64_t>(r.get("size"), 0));
  return total;
}

Result<grouping::Group> selectGroup(const grouping::Scan& scan, const v1::AdoptRequest& req) {
  if (req.pid() > 0) return grouping::groupOf(scan, req.pid());
  for (const auto& g : scan.groups)
    if (g.id == req.group()) return g;
  return notFound("no group `" + req.group() + "` on this node (see `lxmig groups --all`)");
}

}  // namespace

Result<v1::AdoptReply> adopt(node::Node& node, const v1::AdoptRequest& req, const ProgressFn& progress) {
  const auto& cfg = node.config();
  if ((req.pid() > 0) == !req.group().empty()) return invalidArgument("adopt needs exactly one of --pid and --group");
  if (req.pid() < 0 || req.pid() >= (1 << 22))
    return invalidArgument("--pid " + std::to_string(req.pid()) + " is out of range");
  if (!req.group().empty() &&
      (req.group().size() > 64 || req.group().find_first_not_of("g0123456789abcdef.") != std::string::npos))
    return invalidArgument("`" + req.group() + "` is not a group id (g<hex>.<hex>, as lxmig groups shows)");
  if (!req.name().empty()) LXMIG_RETURN_IF_ERROR(checkContainerName(req.name()));
  std::vector<std::string> binds;
  for (const auto& b : req.binds()) {
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b));
    std::string d = b.size() > 1 && b.back() == '/' ? b.substr(0, b.size() - 1) : b;
    struct stat st {};
    if (::stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return notFound("--bind " + b + ": no such directory on " + cfg.node);
    binds.push_back(d);
  }

  // 1. CHECK
  const int64_t t0 = monotonicNs();
  const int64_t startedMs = wallMs();
  grouping::Scan scan = grouping::scanNode({});
  LXMIG_ASSIGN_OR_RETURN(grouping::Group group, selectGroup(scan, req));
  const pid_t root = grouping::adoptionRoot(scan, group, req.pid());
  const std::vector<pid_t> tree = grouping::processTree(scan, root);
  if (tree.empty()) return notFound("process " + std::to_string(root) + " is gone");
  if (tree.size() > kMaxMembers)
    return failedPrecondition("the process tree of " + std::to_string(root) + " has " + std::to_string(tree.size()) +
                              " processes; adopt takes at most " + std::to_string(kMaxMembers));
  grouping::AdoptionRules rules;
  rules.agentPid = ::getpid();
  rules.hostNamespaces = grouping::namespacesOf("/proc", "self");
  rules.visibleDirs = grouping::kContainerSystemDirs;
  rules.visibleDirs.insert(rules.visibleDirs.end(), binds.begin(), binds.end());
  if (auto offer = node.deviceOffer(); offer.ok())
    for (const auto& d : *offer) rules.offeredDevices.push_back(d.path);
  auto facts = grouping::readAdoptionFacts("/proc", tree);
  grouping::AdoptionPlan plan = grouping::planAdoption(scan, root, facts, rules);

  if (!plan.sysvShm.empty()) {
    const uint64_t others = otherSegmentBytes(plan.sysvShm);
    if (others > kMaxOtherSegmentBytes)
      plan.refusals.push_back(
          "the tree maps System V shared memory, and CRIU would dump the host's other segments "
          "with it (" +
          humanBytes(others) + ", more than " + humanBytes(kMaxOtherSegmentBytes) + ")");
  }
  v1::AdoptReply reply;
  reply.set_root_pid(plan.root);
  for (pid_t p : plan.members) reply.add_pids(p);
  for (const auto& d : plan.devices) reply.add_devices(d);
  for (const auto& r : plan.refusals) reply.add_refusals(r);
  const std::string name = req.name().empty() ? "adopted-" + std::to_string(plan.root) : req.name();
  reply.set_name(name);

  v1::MigrationReport& rep = *reply.mutable_report();
  rep.set_id(newMigrationId());
  rep.set_container(name);
  rep.set_source(cfg.node);
  rep.set_target(cfg.node);
  rep.set_mode(v1::MODE_ADOPT);
  rep.set_reason("adopt");
  rep.set_started_ms(startedMs);
  if (req.dry_run()) {
    reply.clear_report();
    return reply;
  }
  Journal journal(node.audit(), rep);
  journal.begin("adopt");
  auto total = [&] { return (monotonicNs() - t0) / 1000000; };
  // The check ran before the row existed: recorded as measured.
  journal.addPhase(v1::PHASE_CHECK, startedMs, total(), 0,
                   "processes=" + std::to_string(plan.members.size()) + " root=" + std::to_string(plan.root) +
                       " refusals=" + std::to_string(plan.refusals.size()) +
                       " scan_ms=" + std::to_string(scan.durationMs));
  if (!plan.refusals.empty()) {
    for (const auto& r : plan.refusals) journal.event("info", "refused: " + r);
    journal.finish(v1::RESULT_REFUSED, failedPrecondition(plan.refusals.front()), total());
    return reply;
  }

  // 2. CREATE
  auto held = node.reserve(name, "being adopted into", node::ReservationKind::kAdopting);
  if (!held.ok()) {
    journal.finish(v1::RESULT_REFUSED, held.status(), total());
    return held.status();
  }
  v1::RunContainerRequest run;
  run.set_name(name);
  for (const auto& b : binds) {
    auto* m = run.add_binds();
    m->set_host_path(b);
    m->set_container_path(b);
    m->set_read_only(false);
  }
  for (const auto& p : req.publish()) run.add_publish(p);
  for (const auto& d : plan.devices) run.add_devices(d);
  Result<v1::ContainerInfo> made = okStatus();
  Progressor prog(progress, rep.id(), name);
  {
    PhaseClock create(journal, v1::PHASE_CREATE);
    prog.phase(v1::PHASE_CREATE, 0);
    made = node.runWithInit(run, *held);
    create.end(made.status(), 0, made.ok() ? "ip=" + made->ip() : "");
  }
  if (!made.ok()) {
    journal.finish(v1::RESULT_ABORTED, made.status(), total());
    return reply;
  }
  reply.set_ip(made->ip());
  auto removeContainer = [&] {
    if (Status st = node.lxc().destroy(name); !st.ok())
      journal.warn("remove the container `" + name + "`: " + st.message());
    if (auto s = node.spec(name); s.ok()) {
      (void)node.releaseAddress(*s);
      node.dropNetState(*s);
    }
  };

  // 3. DUMP: the tree stays stopped on the host from here until 5 or the
  // abort.
  const std::string images = node.imagesRoot() + "/" + rep.id();
  const int64_t frozenAt = monotonicNs();
  Status st;
  std::vector<Task> stopped;
  {
    PhaseClock dump(journal, v1::PHASE_DUMP);
    prog.phase(v1::PHASE_DUMP, 0);
    ImagesWatch watch(prog, images);
    st = node.lxc().dumpTree(plan.root, name, images, !plan.sysvShm.empty());
    if (st.ok()) stopped = treeOf(plan.root);
    dump.end(st, treeBytes(images), "tasks=" + std::to_string(stopped.size()));
  }
  rep.set_bytes(treeBytes(images));
  if (!stopped.empty()) {
    // What settleAdoptions needs if the agent stops before 5.
    journal.event("info", std::string(kStoppedEvent) + tasksText(stopped));
    if (cfg.failAt == "adopt-crash") {
      // Testing: the agent dies with the host tree stopped; its restart
      // settles the adoption (settleAdoptions).
      LXMIG_LOG(kError, kLog) << "injected crash after the dump (lxmigd --fail-at adopt-crash)";
      std::_Exit(70);
    }
  }
  auto abort = [&](const Status& why, bool dumped) {
    PhaseClock ab(journal, v1::PHASE_ABORT);
    prog.phase(v1::PHASE_ABORT, 0);
    if (dumped) signalTree(stopped, SIGCONT);
    removeContainer();
    keepLogs(images, cfg.stateDir + "/logs/" + rep.id());
    (void)removeTree(images);
    ab.end(okStatus(), 0, dumped ? "host processes continued" : "");
    journal.finish(v1::RESULT_ABORTED, why, total());
    return reply;
  };
  if (!st.ok()) return abort(st, false);

  // 4. RESTORE
  {
    PhaseClock restore(journal, v1::PHASE_RESTORE);
    prog.phase(v1::PHASE_RESTORE, rep.bytes());
    if (cfg.failAt == "adopt-restore") ::unlink((images + "/pstree.img").c_str());  // testing: CRIU fails for real
    st = copyShmFiles(plan.shmFiles, 0, node.lxc().initPid(name));
    if (st.ok()) st = node.lxc().restoreInto(name, images);
    // The restored tree's pid inside is its pid on the host: find it.
    if (st.ok() && !plan.sysvShm.empty()) {
      pid_t hostRoot = 0;
      if (auto inside = node.lxc().pids(name); inside.ok())
        for (pid_t p : *inside)
          if (innerPid(p) == plan.root) hostRoot = p;
      st = hostRoot > 0 ? node.lxc().joinTreeIpc(name, hostRoot, plan.sysvShm)
                        : notFound("the restored tree's root is not in `" + name + "`");
    }
    restore.end(
        st, 0,
        "shm_files=" + std::to_string(plan.shmFiles.size()) + " sysv_segments=" + std::to_string(plan.sysvShm.size()));
  }
  if (!st.ok()) return abort(st, true);

  // 5. COMMIT
  {
    PhaseClock commit(journal, v1::PHASE_COMMIT);
    prog.phase(v1::PHASE_COMMIT, 0);
    signalTree(stopped, SIGKILL);
    // Gone before their shared memory is looked at (a killed task detaches
    // its segments as it exits); a zombie waits for its parent of the host.
    awaitGone(stopped, 2000);
    // The tree's shared memory lives on in the container: the host's copies
    // go (POSIX files by name, System V segments once nothing attaches them).
    for (const auto& f : plan.shmFiles) ::unlink(f.c_str());
    for (uint64_t id : plan.sysvShm) {
      shmid_ds ds{};
      if (::shmctl(static_cast<int>(id), IPC_STAT, &ds) == 0 && ds.shm_nattch == 0)
        (void)::shmctl(static_cast<int>(id), IPC_RMID, nullptr);
    }
    // The commit point: from here the container's copy is the one.
    if (Status cont = node.lxc().continueAll(name); !cont.ok()) journal.warn(cont.message());
    rep.set_downtime_ms((monotonicNs() - frozenAt) / 1000000);
    reply.clear_pids();
    auto inside = node.lxc().pids(name);
    int init = node.lxc().initPid(name);
    if (inside.ok())
      for (pid_t p : *inside)
        if (p != init) reply.add_pids(innerPid(p));
    std::sort(reply.mutable_pids()->begin(), reply.mutable_pids()->end());
    (void)removeTree(images);
    commit.end(okStatus(), 0, "processes=" + std::to_string(reply.pids_size()));
  }
  journal.finish(v1::RESULT_COMMITTED, okStatus(), total());
  LXMIG_LOG(kInfo, kLog) << name << ": " << reply.pids_size() << " processes of the host continue in it at "
                         << reply.ip();
  return reply;
}

int settleAdoptions(node::Node& node) {
  int settled = 0;
  for (const auto& m : interruptedRows(node.audit(), v1::MODE_ADOPT)) {
    std::vector<Task> stopped;
    if (auto events = node.audit().events(m.id); events.ok())
      for (const auto& e : *events)
        if (startsWith(e.text, kStoppedEvent)) stopped = parseTasks(e.text.substr(std::string(kStoppedEvent).size()));
    const bool hostAlive = anyAlive(stopped);
    v1::MigrationReport rep = reportOf(m, v1::MODE_ADOPT);
    Journal journal(node.audit(), rep);
    if (hostAlive || stopped.empty()) {
      // Before the commit the host's copy is the one: the container goes,
      // the host tasks continue.
      if (Status st = node.lxc().destroy(m.container); !st.ok())
        LXMIG_LOG(kWarn, kLog) << "settling adoption " << m.id << ": " << st.toString();
      if (auto s = node.spec(m.container); s.ok()) {
        (void)node.releaseAddress(*s);
        node.dropNetState(*s);
      }
      signalTree(stopped, SIGCONT);
      journal.event("warn", "the agent stopped during the adoption: the processes continue on the host");
      journal.finish(v1::RESULT_ABORTED, Status(Code::kAborted, "interrupted by an agent restart; rolled back"), -1);
    } else {
      // The host copy is gone: the container's is the one, and may still be
      // stopped as restored.
      (void)node.lxc().continueAll(m.container);
      journal.event("warn", "the agent stopped during the adoption's commit: the processes run in the container");
      journal.finish(v1::RESULT_COMMITTED, okStatus(), -1);
    }
    ++settled;
  }
  return settled;
}

}  // namespace lxmig::migration
