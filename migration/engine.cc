#include "lxmig/migration/engine.h"

#include <map>
#include <set>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <future>
#include <random>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/proto/vocabulary.h"
#include "precopy.h"
#include "lxmig/transport/tree_transfer.h"

namespace lxmig::migration {

using node::Node;
using node::Spec;
using container::RunState;
using container::runStateName;
using transport::ChunkSource;
using transport::ChunkWriter;
using transport::Manifest;
using transport::TreeWriter;
using transport::TailSender;
using criu::PageStore;
using tracking::kPageSize;
using tracking::PageSet;
using tracking::TrackerBackend;
using tracking::chooseTracker;
using transport::grpcChunkWriter;
using transport::treeBytes;
namespace devices = container::devices;
namespace {

constexpr const char* kLog = "engine";
// How long a migration waits for the memory of the previous one to arrive.
constexpr int64_t kMemoryFillWaitMs = 300000;

Status cancelledByOperator() { return cancelled("cancelled by the operator"); }

void setDeadline(grpc::ClientContext& ctx, int seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// Times one phase into the report and the audit log.
class PhaseClock {
 public:
  PhaseClock(Node& node, v1::MigrationReport& rep, v1::Phase phase)
      : node_(node), rep_(rep), phase_(phase), startWall_(wallMs()), start_(monotonicNs()) {
    auto id = node_.audit().beginPhase(rep_.id(), std::string(name(phase_)), startWall_);
    if (id.ok()) auditId_ = *id;
  }
  ~PhaseClock() {
    if (!ended_) end(Status(Code::kAborted, "interrupted"));
  }
  void end(const Status& st, uint64_t bytes = 0, const std::string& detail = "") {
    if (ended_) return;
    ended_ = true;
    int64_t ms = (monotonicNs() - start_) / 1000000;
    auto* p = rep_.add_phases();
    p->set_phase(phase_);
    p->set_started_ms(startWall_);
    p->set_duration_ms(ms);
    p->set_bytes(bytes);
    p->set_result(st.ok() ? v1::PHASE_RESULT_OK : v1::PHASE_RESULT_FAILED);
    p->set_error(st.ok() ? "" : st.message());
    p->set_detail(detail);
    if (auditId_)
      (void)node_.audit().endPhase(auditId_, startWall_ + ms, bytes, std::string(name(p->result())), p->error(), detail);
  }

 private:
  Node& node_;
  v1::MigrationReport& rep_;
  v1::Phase phase_;
  int64_t startWall_, start_;
  int64_t auditId_ = 0;
  bool ended_ = false;
};

class Progressor {
 public:
  Progressor(const ProgressFn& fn, std::string migrationId)
      : fn_(fn), id_(std::move(migrationId)), t0_(monotonicNs()) {}
  void phase(v1::Phase phase, uint64_t total) {
    phase_ = phase;
    done_ = 0;
    total_ = total;
    phaseStart_ = monotonicNs();
    emit(true);
  }
  void add(uint64_t n) {
    done_ += n;
    emit(false);
  }
  void round(int k, uint64_t dirtyBytes, int64_t predictedMs) {
    // From round 1 on, "total" is where this round's sending will end.
    if (k > 0) total_ = done_ + dirtyBytes;
    round_ = k;
    dirty_ = dirtyBytes;
    predicted_ = predictedMs;
    emit(true);
  }

 private:
  void emit(bool force) {
    if (!fn_) return;
    int64_t now = monotonicNs();
    if (!force && now - last_ < 100000000) return;
    last_ = now;
    v1::Progress p;
    p.set_migration_id(id_);
    p.set_phase(phase_);
    p.set_bytes_done(done_);
    p.set_bytes_total(total_);
    double secs = static_cast<double>(now - phaseStart_) / 1e9;
    p.set_rate_bps(secs > 0 ? static_cast<double>(done_) / secs : 0);
    p.set_elapsed_ms((now - t0_) / 1000000);
    if (phase_ == v1::PHASE_PRECOPY) {
      p.set_round(round_);
      p.set_dirty_bytes(dirty_);
      p.set_predicted_downtime_ms(predicted_);
    }
    fn_(p);
  }
  const ProgressFn& fn_;
  std::string id_;
  v1::Phase phase_ = v1::PHASE_START;
  uint64_t done_ = 0, total_ = 0;
  int64_t t0_, phaseStart_ = 0, last_ = 0;
  int round_ = 0;
  uint64_t dirty_ = 0;
  int64_t predicted_ = 0;
};

// Sends a tree on an open bulk stream.
Result<Manifest> streamTree(ChunkWriter& w, const std::string& id,
                            v1::TransferChunk::Area area, const std::string& root, const Manifest& prev,
                            Progressor& prog, uint64_t* bytes, const CancelledFn& cancelled,
                            const std::map<std::string, uint64_t>* resume = nullptr,
                            const std::vector<std::string>& first = {}) {
  return sendTree(
      id, area, root, prev,
      [&](v1::TransferChunk& c) {
        if (cancelled && cancelled()) return false;
        return w.write(c);
      },
      [&](uint64_t n) {
        *bytes += n;
        prog.add(n);
      },
      resume, first);
}

// One pre-copy round into the audit and the report.
void recordRound(Node& node, v1::MigrationReport& rep, const RoundStats& r) {
  store::RoundRecord rr;
  rr.round = r.round;
  rr.startedMs = r.startedMs;
  rr.durationMs = r.durationMs;
  rr.scanUs = r.scanUs;
  rr.processes = r.processes;
  rr.dirtyPages = static_cast<int64_t>(r.dirtyPages);
  rr.pagesSent = static_cast<int64_t>(r.pagesSent);
  rr.bytes = static_cast<int64_t>(r.bytesSent);
  rr.dirtyRateBps = r.dirtyRateBps;
  rr.sendRateBps = r.sendRateBps;
  rr.predictedDowntimeMs = r.predictedDowntimeMs;
  rr.stop = r.stop;
  (void)node.audit().addRound(rep.id(), rr);
  auto* rp = rep.add_rounds();
  rp->set_round(r.round);
  rp->set_started_ms(r.startedMs);
  rp->set_duration_ms(r.durationMs);
  rp->set_scan_us(r.scanUs);
  rp->set_processes(r.processes);
  rp->set_dirty_pages(r.dirtyPages);
  rp->set_pages_sent(r.pagesSent);
  rp->set_bytes(r.bytesSent);
  rp->set_dirty_rate_bps(r.dirtyRateBps);
  rp->set_send_rate_bps(r.sendRateBps);
  rp->set_predicted_downtime_ms(r.predictedDowntimeMs);
  rp->set_stop(r.stop);
}

// CRIU's logs of a failed migration outlive the images for the operator.
void keepCriuLogs(const std::string& imagesDir, const std::string& dest) {
  for (const char* f : {"dump.log", "restore.log", "lxc.log"}) {
    auto text = readFile(imagesDir + "/" + f);
    if (!text.ok()) continue;
    if (makeDirs(dest, 0700).ok()) (void)writeFileAtomic(dest + "/" + f, *text, 0600);
  }
}

}  // namespace

std::string newMigrationId() {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard lk(mu);
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

v1::MigrationReport runMigration(Node& node, const v1::MigrateRequest& req, const ProgressFn& progress,
                                 const CancelledFn& cancelled) {
  const auto& cfg = node.config();
  v1::MigrationReport rep;
  rep.set_id(newMigrationId());
  rep.set_container(req.container());
  rep.set_source(cfg.node);
  rep.set_target(req.target());
  rep.set_mode(req.mode());
  rep.set_reason(req.reason().empty() ? "operator" : req.reason());
  rep.set_started_ms(wallMs());
  const int64_t t0 = monotonicNs();
  Progressor prog(progress, rep.id());

  store::MigrationRecord rec;
  rec.id = rep.id();
  rec.container = rep.container();
  rec.source = rep.source();
  rec.target = rep.target();
  rec.mode = std::string(name(rep.mode()));
  rec.startedMs = rep.started_ms();
  rec.result = std::string(name(v1::RESULT_RUNNING));
  rec.reason = rep.reason();
  if (auto st = node.audit().beginMigration(rec); !st.ok()) {
    LXMIG_LOG(kWarn, kLog) << "audit: " << st.toString();
  }
  prog.phase(v1::PHASE_START, 0);  // the client learns the id before anything can block

  auto finish = [&](v1::MigrationResult result, const Status& st) {
    rep.set_result(result);
    rep.set_error(st.ok() ? "" : st.message());
    rep.set_total_ms((monotonicNs() - t0) / 1000000);
    if (rep.downtime_ms() == 0 && result != v1::RESULT_COMMITTED) rep.set_downtime_ms(-1);
    (void)node.audit().finishMigration(rep.id(), std::string(name(result)), rep.error(), wallMs(), rep.bytes(),
                                       rep.downtime_ms(), rep.total_ms());
    LXMIG_LOG(kInfo, kLog) << "migration " << rep.id() << " of " << rep.container() << " to " << rep.target()
                           << ": " << name(result) << (st.ok() ? "" : " (" + st.message() + ")");
    return rep;
  };

  // ---- validation: nothing reserved yet, failures cost nothing ----
  if (req.container().empty()) return finish(v1::RESULT_REFUSED, invalidArgument("no container name given"));
  auto specR = node.spec(req.container());
  if (!specR.ok()) return finish(v1::RESULT_REFUSED, specR.status());
  const Spec spec = *specR;
  if (req.target().empty()) return finish(v1::RESULT_REFUSED, invalidArgument("no target node given (--to)"));
  if (req.target() == cfg.node)
    return finish(v1::RESULT_REFUSED, invalidArgument("container `" + spec.name + "` already runs on " + cfg.node));
  if (rep.mode() != v1::MODE_AUTO && rep.mode() != v1::MODE_PRE_COPY && rep.mode() != v1::MODE_STOP_AND_COPY)
    return finish(v1::RESULT_REFUSED, invalidArgument("unknown migration mode `" + std::string(name(rep.mode())) +
                                                      "` (pre-copy or stop-and-copy)"));
  // The tracker decides: "none" is stop-and-copy (DESIGN.md, dirty tracking).
  const TrackerBackend* backend = nullptr;
  if (rep.mode() != v1::MODE_STOP_AND_COPY) {
    auto b = chooseTracker(std::string(name(req.tracker())));
    if (!b.ok()) return finish(v1::RESULT_REFUSED, b.status());
    if (std::string((*b)->name) != "none") backend = *b;
  }
  rep.set_mode(backend ? v1::MODE_PRE_COPY : v1::MODE_STOP_AND_COPY);
  v1::Tracker used = v1::TRACKER_NONE;
  if (backend) (void)parse(backend->name, &used);
  rep.set_tracker(used);
  (void)node.audit().setMode(rep.id(), std::string(name(rep.mode())), std::string(name(rep.tracker())));
  auto stubR = node.peer(req.target());
  if (!stubR.ok()) return finish(v1::RESULT_REFUSED, stubR.status());
  auto& stub = *stubR;
  RunState rs = node.lxc().state(spec.name);
  if (rs != RunState::kRunning)
    return finish(v1::RESULT_REFUSED, failedPrecondition("container `" + spec.name + "` is " + runStateName(rs) + ", not RUNNING"));
  if (auto st = node.reserve(spec.name, "migrating to " + req.target()); !st.ok()) return finish(v1::RESULT_REFUSED, st);

  const std::string imagesDir = node.imagesRoot() + "/" + rep.id();
  std::unique_ptr<PreCopy> pc;  // pre-copy state; its destructor disarms the trackers
  bool frozen = false;
  bool restoreSent = false;

  // Tells the target to drop whatever this migration made there.
  auto abortTarget = [&](const std::string& reason, int seconds) {
    grpc::ClientContext ctx;
    setDeadline(ctx, seconds);
    v1::AbortRequest ar;
    ar.set_migration_id(rep.id());
    ar.set_reason(reason);
    v1::Ack ack;
    return fromPeerGrpc(req.target(), stub->Abort(&ctx, ar, &ack));
  };

  // Rolls back everything on both sides; legal in every phase, idempotent.
  auto abortAll = [&](const Status& why) {
    PhaseClock ph(node, rep, v1::PHASE_ABORT);
    Status targetAbort;
    for (int attempt = 0; attempt < (restoreSent ? 5 : 1); ++attempt) {
      targetAbort = abortTarget(why.message(), 5);
      if (targetAbort.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (restoreSent && !targetAbort.ok()) {
      // The target may run the container: thawing here could make two copies.
      ph.end(targetAbort);
      node.unreserve(spec.name);
      node.requestFrozenCheck();  // settled once the target answers again
      return finish(v1::RESULT_FAILED, Status(Code::kAborted, why.message() + "; target " + req.target() +
                                                         " did not confirm the abort, source `" + spec.name +
                                                         "` left FROZEN on " + cfg.node +
                                                         " to avoid two running copies; the agent settles it with " +
                                                         req.target() + " once it answers"));
    }
    Status local;
    if (pc) pc->disarm();  // no write-protection is left in the processes
    if (frozen) {
      local = node.lxc().thaw(spec.name);
      if (auto st = node.claimAddress(spec); !st.ok() && local.ok()) local = st;
      if (auto st = node.firewall().unblock(spec.ip); !st.ok() && local.ok()) local = st;
    }
    keepCriuLogs(imagesDir, node.config().stateDir + "/logs/" + rep.id());
    (void)removeTree(imagesDir);
    node.unreserve(spec.name);
    ph.end(local);
    return finish(v1::RESULT_ABORTED, why);
  };
  auto isCancelled = [&] { return cancelled && cancelled(); };

  // ---- the memory of the migration that brought it here must be complete ----
  if (auto fill = node.memoryFill(spec.name)) {
    prog.phase(v1::PHASE_AWAIT_MEMORY, 0);
    PhaseClock ph(node, rep, v1::PHASE_AWAIT_MEMORY);
    const std::string what = "memory of `" + spec.name + "` is still arriving from migration " + fill->migrationId +
                             " (lazy restore, daemon pid " + std::to_string(fill->pid) + ")";
    const std::string fillId = fill->migrationId;
    LXMIG_LOG(kInfo, kLog) << what << ": the migration waits for it";
    const int64_t deadline = monotonicNs() + kMemoryFillWaitMs * 1000000;
    for (; fill; fill = node.memoryFill(spec.name)) {
      Status stop = isCancelled()                 ? cancelledByOperator()
                    : monotonicNs() > deadline ? unavailable(what + " after " +
                                                             std::to_string(kMemoryFillWaitMs / 1000) +
                                                             " s; try again once it is complete")
                                                : okStatus();
      if (!stop.ok()) {
        ph.end(stop);
        node.unreserve(spec.name);
        return finish(v1::RESULT_REFUSED, stop);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ph.end(okStatus(), 0, "waited for the lazy restore of migration " + fillId + " to fill memory");
  }

  // ---- PREPARE ----
  uint16_t dataPort = 0;
  {
    prog.phase(v1::PHASE_PREPARE, 0);
    PhaseClock ph(node, rep, v1::PHASE_PREPARE);
    v1::PrepareRequest pr;
    pr.set_migration_id(rep.id());
    pr.set_source(cfg.node);
    *pr.mutable_spec() = spec.toProto();
    uint64_t mem = node.lxc().memoryBytes(spec.name);
    pr.set_memory_bytes(mem);
    pr.set_expected_bytes(treeBytes(node.lxc().rootfs(spec.name)));
    // Its devices, checked by the target before anything moves.
    auto need = node.deviceNeeds(spec.name);
    if (!need.ok()) {
      ph.end(need.status());
      node.unreserve(spec.name);
      return finish(v1::RESULT_REFUSED, need.status().withContext("devices of `" + spec.name + "`"));
    }
    for (const auto& d : *need) *pr.add_devices_needed() = devices::toProto(d);
    if (auto offer = node.deviceOffer(); offer.ok())
      for (const auto& d : *offer) *pr.add_source_offer() = devices::toProto(d);
    grpc::ClientContext ctx;
    setDeadline(ctx, 10);
    // A peer that just restarted leaves the channel in reconnect backoff;
    // wait for it (until the deadline) instead of failing at once.
    ctx.set_wait_for_ready(true);
    v1::PrepareReply prep;
    Status st = fromPeerGrpc(req.target(), stub->Prepare(&ctx, pr, &prep));
    dataPort = static_cast<uint16_t>(prep.data_port());
    ph.end(st);
    if (!st.ok()) {
      node.unreserve(spec.name);
      // The target may have reserved things before refusing.
      (void)abortTarget(st.message(), 3);
      return finish(v1::RESULT_REFUSED, st);
    }
  }
  if (isCancelled()) return abortAll(cancelledByOperator());

  // Bulk streams: the target's data link when it offers one (DESIGN.md:
  // gRPC stays far below the link rate), the Transfer RPC otherwise. A link
  // that cannot be opened is a warning, not a failure: the rest of this
  // migration uses the RPC.
  bool useLink = dataPort != 0;
  auto openStream = [&]() -> std::unique_ptr<ChunkWriter> {
    if (useLink) {
      auto host = node.peerHost(req.target());
      Result<std::unique_ptr<ChunkWriter>> w = host.status();
      if (host.ok()) w = connectDataLink(node.tlsIdentity(), *host, dataPort, 5000);
      if (w.ok()) return std::move(*w);
      useLink = false;
      std::string m = "data link to " + req.target() + " unavailable, bulk data goes over gRPC: " + w.status().message();
      LXMIG_LOG(kWarn, kLog) << "migration " << rep.id() << ": " << m;
      rep.add_warnings(m);
      (void)node.audit().addEvent(rep.id(), "warn", m);
    }
    return grpcChunkWriter(*stub, req.target());
  };

  // ---- SYNC: the writable area while the container runs ----
  Manifest manifest;
  {
    const std::string root = node.lxc().rootfs(spec.name);
    prog.phase(v1::PHASE_SYNC, treeBytes(root));
    PhaseClock ph(node, rep, v1::PHASE_SYNC);
    auto w = openStream();
    uint64_t bytes = 0;
    auto m = streamTree(*w, rep.id(), v1::TransferChunk::ROOTFS, root, {}, prog, &bytes, cancelled);
    Status st = w->finish().status();
    if (st.ok() && !m.ok()) st = m.status();
    if (st.ok() && isCancelled()) st = cancelledByOperator();
    rep.set_bytes(rep.bytes() + bytes);
    ph.end(st, bytes, std::string("via ") + w->kind());
    if (!st.ok()) return abortAll(st.withContext("sync"));
    manifest = std::move(*m);
  }

  // ---- PRE-COPY: memory rounds while the container runs ----
  const uint64_t memBytes = node.lxc().memoryBytes(spec.name);
  if (backend) {
    prog.phase(v1::PHASE_PRECOPY, memBytes);
    PhaseClock ph(node, rep, v1::PHASE_PRECOPY);
    PreCopyOptions o;
    o.migrationId = rep.id();
    o.backend = backend;
    o.maxDowntimeMs = req.max_downtime_ms() > 0 ? req.max_downtime_ms() : kDefaultMaxDowntimeMs;
    o.maxRounds = req.max_rounds() > 0 ? req.max_rounds() : kDefaultMaxRounds;
    o.memoryBytes = memBytes;
    o.freeze = [&] { return node.lxc().freeze(spec.name); };
    o.thaw = [&] { return node.lxc().thaw(spec.name); };
    o.onScan = [&](const RoundStats& r) { prog.round(r.round, r.dirtyPages * kPageSize, r.predictedDowntimeMs); };
    pc = std::make_unique<PreCopy>(o, [&] { return node.lxc().pids(spec.name); });
    Status st = pc->start();
    if (!st.ok()) {
      // A process that cannot be tracked: the whole container moves by
      // stop-and-copy instead (nothing was left in any process).
      std::string w = "pre-copy impossible for `" + spec.name + "`, falling back to stop-and-copy: " + st.message();
      LXMIG_LOG(kWarn, kLog) << w;
      rep.add_warnings(w);
      (void)node.audit().addEvent(rep.id(), "warn", w);
      pc.reset();
      rep.set_mode(v1::MODE_STOP_AND_COPY);
      (void)node.audit().setMode(rep.id(), std::string(name(rep.mode())), backend->name);
      ph.end(okStatus(), 0, "fallback: " + st.message());
    } else {
      uint64_t bytes = 0;
      auto counted = [&](uint64_t n) {
        bytes += n;
        prog.add(n);
      };
      Status rst;
      for (;;) {
        if (isCancelled()) {
          rst = cancelledByOperator();
          break;
        }
        // One stream per round: when it ends, the target folds the round
        // into its page store.
        auto w = openStream();
        auto sink = [&](v1::TransferChunk& c) { return !isCancelled() && w->write(c); };
        auto r = pc->round(sink, counted);
        Status fin = w->finish().status();
        if (!r.ok()) {
          rst = r.status();
          if (!fin.ok() && rst.code() == Code::kUnavailable) rst = fin;  // the target's reason
          break;
        }
        if (!fin.ok()) {
          rst = fin;
          break;
        }
        recordRound(node, rep, *r);
        prog.round(r->round, r->dirtyPages * kPageSize, r->predictedDowntimeMs);
        if (!r->stop.empty()) break;
      }
      if (isCancelled()) rst = cancelledByOperator();
      for (const auto& wn : pc->warnings()) rep.add_warnings(wn);
      rep.set_bytes(rep.bytes() + bytes);
      ph.end(rst, bytes, "tracker=" + std::string(backend->name) + " rounds=" + std::to_string(pc->roundsDone()));
      if (!rst.ok()) return abortAll(rst.withContext("pre-copy"));
    }
  }

  // The stream for the images and the file delta.
  auto w = openStream();

  // ---- FREEZE: downtime starts ----
  int64_t tFreeze = 0;
  {
    prog.phase(v1::PHASE_FREEZE, 0);
    PhaseClock ph(node, rep, v1::PHASE_FREEZE);
    tFreeze = monotonicNs();
    Status st = node.lxc().freeze(spec.name);
    if (st.ok()) {
      frozen = true;
      // Nothing of the frozen copy may leave this node or reach it: not
      // its packets, not the RSTs its sockets send when it is destroyed at
      // commit (the established flows continue on the target).
      st = node.firewall().block(spec.ip);
      // Stop routing the address here.
      if (auto rs2 = node.releaseAddress(spec); !rs2.ok()) {
        LXMIG_LOG(kWarn, kLog) << rs2.toString();
      }
    }
    ph.end(st);
    if (!st.ok()) return abortAll(st);
  }
  FinalStats fs;
  v1::PrelayoutRequest plr;
  if (pc) {
    PhaseClock ph(node, rep, v1::PHASE_FINAL_SCAN);
    auto r = pc->finalScan();
    Status st = r.ok() ? okStatus() : r.status();
    if (r.ok()) fs = *r;
    // What the dump will hold, for the target's prelayout (below).
    const int64_t tp = monotonicNs();
    plr.set_migration_id(rep.id());
    if (st.ok())
      for (const auto& [vpid, pages] : pc->predictedDump()) {
        auto* p = plr.add_procs();
        p->set_vpid(vpid);
        for (const auto& r : pages.ranges()) {
          p->add_ranges(r.start);
          p->add_ranges(r.end);
        }
      }
    ph.end(st, 0, "dirty_pages=" + std::to_string(fs.dirtyPages) + " valid_pages=" + std::to_string(fs.validPages) +
                      " scan_us=" + std::to_string(fs.scanUs) +
                      " predict_us=" + std::to_string((monotonicNs() - tp) / 1000));
    if (!st.ok()) return abortAll(st.withContext("final scan"));
  }
  // While CRIU dumps here, the target lays its page store out the way the
  // dump is expected to be, so the restore's assembly has (almost) nothing
  // to move. Only an optimisation: a target that cannot (an older agent)
  // leaves it all to the assembly. Joined when this function returns.
  std::future<void> prelayoutSent;
  if (pc) {
    prelayoutSent = std::async(std::launch::async, [&stub, plr = std::move(plr), target = req.target(), id = rep.id()] {
      grpc::ClientContext ctx;
      setDeadline(ctx, 5);
      v1::Ack ack;
      Status st = fromPeerGrpc(target, stub->Prelayout(&ctx, plr, &ack));
      if (!st.ok())
        LXMIG_LOG(kInfo, kLog) << "migration " << id << ": no prelayout on " << target << " (" << st.message()
                               << "); its restore assembles the page store";
    });
  }

  // ---- DUMP ----
  // The images stream was opened before the freeze (its handshake is not
  // downtime): CRIU's page files go to the target while CRIU still writes
  // them (TailSender), the rest after.
  uint64_t sent = 0;
  auto sink = [&](v1::TransferChunk& c) { return !isCancelled() && w->write(c); };
  auto counted = [&](uint64_t n) {
    sent += n;
    prog.add(n);
  };
  TailSender tail(rep.id(), v1::TransferChunk::IMAGES, imagesDir, "pages-");
  Status streamSt;
  uint64_t imageBytes = 0;
  {
    prog.phase(v1::PHASE_DUMP, 0);
    PhaseClock ph(node, rep, v1::PHASE_DUMP);
    Status st;
    std::atomic<bool> done{false};
    // Pre-copy: CRIU need not write the processes' memory (most of it is on
    // the target already); rewriteDump() reads the rest from the frozen
    // processes.
    int discard = 0;
    // A process killed or exiting since the freeze can leave the freezer
    // FREEZING; CRIU needs it FROZEN: freeze again (the network is blocked,
    // nothing of the container reaches the outside meanwhile).
    auto ensureFrozen = [&]() -> Status {
      if (node.lxc().frozen(spec.name)) return okStatus();
      std::string m = "container `" + spec.name + "` was no longer frozen before the dump (a process exiting?); froze it again";
      LXMIG_LOG(kWarn, kLog) << "migration " << rep.id() << ": " << m;
      (void)node.audit().addEvent(rep.id(), "warn", m);
      LXMIG_RETURN_IF_ERROR(node.lxc().freeze(spec.name));
      if (!pc) return okStatus();
      // Whatever ran meanwhile is scanned again: pages written since the
      // final scan lose their validity on the target.
      LXMIG_ASSIGN_OR_RETURN(FinalStats again, pc->finalScan());
      fs.dirtyPages += again.dirtyPages;
      fs.validPages = again.validPages;
      return okStatus();
    };
    st = ensureFrozen();
    if (pc)
      if (auto pids = node.lxc().pids(spec.name); pids.ok()) discard = static_cast<int>(pids->size());
    if (st.ok()) {
      std::thread dumper([&] {
        st = node.lxc().dump(spec.name, imagesDir, discard);
        done = true;
      });
      while (!done) {
        uint64_t n = 0;
        if (streamSt.ok() && !pc) {  // pre-copy rewrites the page files after the dump
          auto r = tail.poll(sink, counted);
          if (r.ok()) n = *r;
          else streamSt = r.status();
        }
        if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      dumper.join();
    }
    if (st.ok()) imageBytes = treeBytes(imagesDir);
    ph.end(st, imageBytes, "streamed_during_dump=" + std::to_string(sent));
    if (!st.ok()) {
      w->cancel();
      (void)w->finish();
      return abortAll(st);
    }
  }
  if (pc) {
    // Pages the target holds become PARENT references into its page store.
    PhaseClock ph(node, rep, v1::PHASE_REWRITE);
    Status st = pc->rewriteDump(imagesDir, fs);
    if (st.code() == Code::kFailedPrecondition) {
      // The dump did not number its files as expected: dump again, keeping
      // everything (the container is still frozen), and rewrite that.
      LXMIG_LOG(kWarn, kLog) << "migration " << rep.id() << ": " << st.message() << "; dumping again";
      (void)node.audit().addEvent(rep.id(), "warn", st.message() + "; dumped again with all pages");
      fs.parentPages = fs.deltaPages = 0;
      (void)removeTree(imagesDir);
      st = node.lxc().dump(spec.name, imagesDir);
      if (st.ok()) st = pc->rewriteDump(imagesDir, fs);
    }
    if (st.ok()) imageBytes = treeBytes(imagesDir);
    ph.end(st, imageBytes,
           "parent_pages=" + std::to_string(fs.parentPages) + " delta_pages=" + std::to_string(fs.deltaPages));
    if (!st.ok()) {
      w->cancel();
      (void)w->finish();
      return abortAll(st.withContext("rewrite images"));
    }
  }

  // ---- NETWORK STATE: the container's firewall chain and the node's
  // conntrack entries of its address, taken while nothing reaches it (the
  // route went at the freeze; CRIU locked its own namespace for the dump).
  v1::NetState netState;
  {
    PhaseClock ph(node, rep, v1::PHASE_NET_EXPORT);
    size_t exported = 0;
    auto rules = node.firewall().exportContainer(spec.name, spec.ip);
    Status st = rules.status();
    if (rules.ok()) netState.set_rules_json(std::move(*rules));
    if (st.ok() && !req.no_conntrack()) {
      auto entries = net::exportConntrack({spec.ip});
      st = entries.status();
      if (entries.ok()) {
        netState.set_conntrack(net::encodeConntrack(*entries));
        exported = entries->size();
      }
      netState.set_conntrack_replicated(true);
    }
    ph.end(st, netState.ByteSizeLong(),
           "conntrack_entries=" + std::to_string(exported) +
               (req.no_conntrack() ? " (replication switched off)" : ""));
    if (!st.ok()) {
      w->cancel();
      (void)w->finish();
      return abortAll(st.withContext("export network state"));
    }
  }

  // ---- TRANSFER: the rest of the images and the file delta ----
  {
    prog.phase(v1::PHASE_TRANSFER, imageBytes > sent ? imageBytes - sent : 0);
    PhaseClock ph(node, rep, v1::PHASE_TRANSFER);
    uint64_t before = sent;
    Status st = streamSt;
    if (st.ok()) {
      uint64_t bytes = 0;
      // What CRIU's lazy-pages daemon reads at start-up first: the target
      // starts it while the rest arrives.
      auto m = streamTree(*w, rep.id(), v1::TransferChunk::IMAGES, imagesDir, {}, prog, &bytes, cancelled,
                          &tail.sent(), {"inventory.img", "pstree.img"});
      st = m.status();
      if (st.ok()) {
        auto d = streamTree(*w, rep.id(), v1::TransferChunk::ROOTFS, node.lxc().rootfs(spec.name), manifest,
                            prog, &bytes, cancelled);
        st = d.status();
      }
      sent += bytes;
    }
    Status fin = w->finish().status();
    if (!fin.ok()) st = fin;  // the target's reason beats "stream broke"
    if (isCancelled()) st = cancelledByOperator();  // and the operator's beats both
    rep.set_bytes(rep.bytes() + sent);
    ph.end(st, sent, "after_dump=" + std::to_string(sent - before));
    if (!st.ok()) return abortAll(st.withContext("transfer"));
  }

  // ---- RESTORE and CUT-OVER on the target ----
  {
    prog.phase(v1::PHASE_RESTORE, 0);
    PhaseClock ph(node, rep, v1::PHASE_RESTORE);
    grpc::ClientContext ctx;
    setDeadline(ctx, 120);
    v1::RestoreRequest rr;
    rr.set_migration_id(rep.id());
    rr.set_lazy(pc != nullptr);
    *rr.mutable_net() = std::move(netState);
    v1::RestoreReply rrep;
    restoreSent = true;
    Status st = fromPeerGrpc(req.target(), stub->Restore(&ctx, rr, &rrep));
    ph.end(st, 0, st.ok() ? "prelayout_ms=" + std::to_string(rrep.prelayout_ms()) +
                                " prelayout_bytes=" + std::to_string(rrep.prelayout_bytes()) +
                                " prelayout_wait_ms=" + std::to_string(rrep.prelayout_wait_ms()) +
                                " assemble_ms=" + std::to_string(rrep.assemble_ms()) +
                                " assemble_copied=" + std::to_string(rrep.assembled_copied_bytes()) +
                                " assemble_moved=" + std::to_string(rrep.assembled_moved_bytes()) +
                                " lazy_start_ms=" + std::to_string(rrep.lazy_start_ms()) +
                                " net_import_ms=" + std::to_string(rrep.net_import_ms()) +
                                " conntrack_imported=" + std::to_string(rrep.conntrack_imported()) +
                                " restore_ms=" + std::to_string(rrep.restore_ms()) +
                                " cutover_ms=" + std::to_string(rrep.cutover_ms())
                          : "");
    if (!st.ok()) return abortAll(st);
    rep.set_downtime_ms((monotonicNs() - tFreeze) / 1000000);
    // The target's steps as rows of their own, so the frozen window's
    // composition is a query away (durations measured by the target).
    int64_t at = rep.phases(rep.phases_size() - 1).started_ms();
    auto sub = [&](v1::Phase phase, int64_t ms, uint64_t bytes, const std::string& detail) {
      auto* p = rep.add_phases();
      p->set_phase(phase);
      p->set_started_ms(at);
      p->set_duration_ms(ms);
      p->set_bytes(bytes);
      p->set_result(v1::PHASE_RESULT_OK);
      p->set_detail(detail);
      if (auto id = node.audit().beginPhase(rep.id(), std::string(name(phase)), at); id.ok())
        (void)node.audit().endPhase(*id, at + ms, bytes, std::string(name(v1::PHASE_RESULT_OK)), "", detail);
      at += ms;
    };
    sub(v1::PHASE_TARGET_NET_IMPORT, rrep.net_import_ms(), 0,
        "nftables chain + " + std::to_string(rrep.conntrack_imported()) + " conntrack entries");
    if (pc) {
      // Frozen time only the wait is; the layout itself ran during the dump.
      sub(v1::PHASE_TARGET_PRELAYOUT_WAIT, rrep.prelayout_wait_ms(), rrep.prelayout_bytes(),
          rrep.prelayout_ms() || rrep.prelayout_bytes()
              ? "page store laid out during the dump in " + std::to_string(rrep.prelayout_ms()) + " ms (" +
                    std::to_string(rrep.prelayout_bytes()) + " bytes moved or copied)"
              : "no prelayout");
      sub(v1::PHASE_TARGET_ASSEMBLE, rrep.assemble_ms(), rrep.assembled_copied_bytes() + rrep.assembled_moved_bytes(),
          "bytes = copied " + std::to_string(rrep.assembled_copied_bytes()) + " + moved " +
              std::to_string(rrep.assembled_moved_bytes()));
      sub(v1::PHASE_TARGET_LAZY_START, rrep.lazy_start_ms(), 0, "criu lazy-pages daemon");
    }
    sub(v1::PHASE_TARGET_RESTORE, rrep.restore_ms(), 0, pc ? "liblxc + criu restore --lazy-pages" : "liblxc + criu restore");
    sub(v1::PHASE_TARGET_NETWORK, rrep.cutover_ms(), 0, "route + gratuitous ARP");
  }

  // ---- COMMIT: the target runs it; the source copy goes ----
  {
    prog.phase(v1::PHASE_COMMIT, 0);
    PhaseClock ph(node, rep, v1::PHASE_COMMIT);
    Status st = node.lxc().destroy(spec.name);
    node.dropNetState(spec);  // its rules and entries live on the target now
    if (auto ub = node.firewall().unblock(spec.ip); !ub.ok()) LXMIG_LOG(kWarn, kLog) << ub.toString();
    (void)removeTree(imagesDir);
    node.unreserve(spec.name);
    grpc::ClientContext ctx;
    setDeadline(ctx, 10);
    v1::MigrationRef ref;
    ref.set_migration_id(rep.id());
    v1::Ack ack;
    Status cst = fromPeerGrpc(req.target(), stub->Commit(&ctx, ref, &ack));
    if (!cst.ok()) {
      LXMIG_LOG(kWarn, kLog) << "commit notice to " << req.target() << " failed: " << cst.toString();
      (void)node.audit().addEvent(rep.id(), "warn", "commit notice to target failed: " + cst.message());
    }
    if (!st.ok()) (void)node.audit().addEvent(rep.id(), "error", "source cleanup: " + st.message());
    ph.end(st);
  }
  return finish(v1::RESULT_COMMITTED, okStatus());
}

// ----------------------------------------------------------------------------
// Frozen leftovers

namespace {

enum class Settle { kThaw, kGone, kWait };

// Who runs the container a migration of this node left frozen.
Settle settleFrozen(Node& node, const std::string& name, std::string& why, std::string& migrationId) {
  // The migration that froze it: the newest of this container, from here.
  auto last = node.audit().listMigrations({.container = name, .result = "", .limit = 1});
  if (last.ok() && !last->empty() && (*last)[0].source == node.config().node) {
    const auto& m = (*last)[0];
    migrationId = m.id;
    auto stub = node.peer(m.target);
    if (stub.ok()) {
      grpc::ClientContext ctx;
      setDeadline(ctx, 10);
      v1::MigrationRef ref;
      ref.set_migration_id(m.id);
      v1::Ack ack;
      Status c = fromPeerGrpc(m.target, (*stub)->Commit(&ctx, ref, &ack));
      if (c.ok()) {
        why = "migration " + m.id + " had restored it on " + m.target + ", which committed it now";
        return Settle::kGone;
      }
      if (c.code() == Code::kFailedPrecondition) {  // prepared there, not restored
        grpc::ClientContext actx;
        setDeadline(actx, 10);
        v1::AbortRequest ar;
        ar.set_migration_id(m.id);
        ar.set_reason("source " + node.config().node + " resumes its frozen copy");
        if (Status a = fromPeerGrpc(m.target, (*stub)->Abort(&actx, ar, &ack)); !a.ok()) {
          why = "aborting migration " + m.id + " on " + m.target + ": " + a.message();
          return Settle::kWait;
        }
        why = "migration " + m.id + " had not restored it on " + m.target + " (aborted there)";
        return Settle::kThaw;
      }
      if (c.code() != Code::kNotFound) {
        why = m.target + " cannot say what became of migration " + m.id + ": " + c.message();
        return Settle::kWait;
      }
    }
  }
  bool running = false, migrating = false;
  std::string unreachable;
  for (const auto& p : node.peerNames()) {
    auto rp = node.peerContainers(p, 3);
    if (!rp.ok()) {
      unreachable += (unreachable.empty() ? "" : ", ") + p;
      continue;
    }
    for (const auto& c : rp->containers())
      if (c.name() == name) {
        running |= c.state() == "RUNNING";
        migrating |= c.state() == "MIGRATING";
      }
  }
  if (running) {
    why = "a peer runs it";
    return Settle::kGone;
  }
  if (migrating || !unreachable.empty()) {
    why = migrating ? "a peer is still migrating it in" : "peer(s) " + unreachable + " unreachable";
    return Settle::kWait;
  }
  why = "no peer has it";
  return Settle::kThaw;
}

}  // namespace

int resolveFrozen(Node& node) {
  static std::mutex mu;
  static std::map<std::string, std::string> waiting;  // name -> why, logged once
  std::lock_guard lk(mu);
  int left = 0;
  for (const auto& name : node.lxc().list()) {
    if (node.lxc().state(name) != RunState::kFrozen) continue;
    auto spec = node.spec(name);
    if (!spec.ok()) continue;
    // A migration running now owns its freeze.
    if (!node.reserve(name, "settling an interrupted migration").ok()) continue;
    std::string why, id;
    const Settle decision = settleFrozen(node, name, why, id);
    if (decision != Settle::kWait && !id.empty())
      (void)node.audit().addEvent(id, "warn",
                                  "frozen copy on " + node.config().node + ": " + why +
                                      (decision == Settle::kGone ? ", removed" : ", thawed"));
    switch (decision) {
      case Settle::kGone:
        LXMIG_LOG(kWarn, "recover") << name << " is frozen here and " << why << ": removing the frozen copy";
        (void)node.lxc().destroy(name);
        node.dropNetState(*spec);
        (void)node.firewall().unblock(spec->ip);
        waiting.erase(name);
        break;
      case Settle::kThaw:
        LXMIG_LOG(kWarn, "recover") << name << " was frozen by an interrupted migration and " << why << ": thawing it";
        (void)node.lxc().thaw(name);
        (void)node.claimAddress(*spec);
        (void)node.firewall().unblock(spec->ip);
        waiting.erase(name);
        break;
      case Settle::kWait:
        if (waiting[name] != why) LXMIG_LOG(kWarn, "recover") << name << " stays frozen for now: " << why;
        waiting[name] = why;
        ++left;
        break;
    }
    node.unreserve(name);
  }
  return left;
}

// ----------------------------------------------------------------------------
// Target side

void Incoming::cleanupStale() {
  const std::string lxcPath = node_.config().lxcPath;
  if (DIR* d = ::opendir(lxcPath.c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d))
      if (startsWith(e->d_name, ".incoming-")) stale.push_back(lxcPath + "/" + e->d_name);
    ::closedir(d);
    for (const auto& s : stale) {
      LXMIG_LOG(kInfo, kLog) << "removing leftover of an interrupted migration: " << s;
      (void)removeTree(s);
    }
  }
  if (DIR* d = ::opendir(node_.imagesRoot().c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") stale.push_back(node_.imagesRoot() + "/" + n);
    }
    ::closedir(d);
    for (const auto& s : stale) (void)removeTree(s);
  }
}

Result<std::shared_ptr<Incoming::State>> Incoming::find(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return notFound("no incoming migration `" + id + "` on " + node_.config().node);
  return it->second;
}

static uint64_t freeBytes(const std::string& path) {
  struct statvfs vf {};
  if (::statvfs(path.c_str(), &vf) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(vf.f_bavail) * vf.f_frsize;
}

Status Incoming::prepare(const v1::PrepareRequest& req) {
  const auto& cfg = node_.config();
  const std::string& id = req.migration_id();
  if (id.empty() || id.find('/') != std::string::npos) return invalidArgument("bad migration id");
  Spec spec = Spec::fromProto(req.spec());
  {
    std::lock_guard lk(mu_);
    if (active_.count(id)) return alreadyExists("migration " + id + " is already prepared on " + cfg.node);
  }
  if (node_.lxc().defined(spec.name))
    return alreadyExists("target " + cfg.node + " already holds a container named `" + spec.name + "`");
  for (const auto& n : node_.lxc().list()) {
    auto s = node_.spec(n);
    if (s.ok() && s->ip == spec.ip)
      return failedPrecondition("target " + cfg.node + ": address " + spec.ip + " is used by `" + n + "`");
  }
  for (const auto& b : spec.binds)
    if (!pathExists(b.hostPath))
      return failedPrecondition("target " + cfg.node + " lacks bind source `" + b.hostPath + "`");
  // Devices: every need met by the same device or a declared mapping; one
  // line per device that is not.
  devices::Placement fit;
  if (req.devices_needed_size() > 0) {
    std::vector<devices::Device> need, sourceOffer;
    for (const auto& d : req.devices_needed()) need.push_back(devices::fromProto(d));
    for (const auto& d : req.source_offer()) sourceOffer.push_back(devices::fromProto(d));
    LXMIG_ASSIGN_OR_RETURN(auto offer, node_.deviceOffer());
    fit = devices::place(need, sourceOffer, offer, cfg.node, spec.name);
    if (!fit.missing.empty()) {
      std::string lines;
      for (const auto& m : fit.missing) lines += (lines.empty() ? "" : "\n") + m;
      return failedPrecondition(lines);
    }
  }
  // Images hold about the container's memory; refuse now rather than after
  // the freeze when it cannot fit.
  uint64_t imgFree = freeBytes(node_.imagesRoot());
  if (req.memory_bytes() > 0 && imgFree < req.memory_bytes())
    return resourceExhausted("target " + cfg.node + " has " + humanBytes(imgFree) + " free for images in " +
                             node_.imagesRoot() + ", the container needs about " + humanBytes(req.memory_bytes()));
  uint64_t fsFree = freeBytes(cfg.lxcPath);
  if (fsFree < req.expected_bytes())
    return resourceExhausted("target " + cfg.node + " has " + humanBytes(fsFree) + " free in " + cfg.lxcPath +
                             ", the writable area needs " + humanBytes(req.expected_bytes()));
  LXMIG_RETURN_IF_ERROR(node_.reserve(spec.name, "migrating in from " + req.source()));
  auto st = std::make_shared<State>();
  st->spec = spec;
  st->devices = fit.target;
  // The container's device binds point at this node's devices from now on.
  for (auto& d : st->spec.devices)
    if (auto m = fit.hostPath.find(d.containerPath); m != fit.hostPath.end()) d.hostPath = m->second;
  st->source = req.source();
  st->stagingDir = cfg.lxcPath + "/.incoming-" + id;
  st->imagesDir = node_.imagesRoot() + "/" + id;
  st->startedMs = wallMs();
  st->lastActivityMs = st->startedMs;
  Status mk = makeDirs(st->stagingDir + "/rootfs", 0700);
  if (mk.ok()) mk = makeDirs(st->imagesDir, 0700);
  if (!mk.ok()) {
    discard(id, *st);
    return mk.withContext("target " + cfg.node);
  }
  store::MigrationRecord rec;
  rec.id = id;
  rec.container = spec.name;
  rec.source = req.source();
  rec.target = cfg.node;
  rec.mode = std::string(name(v1::MODE_INCOMING));
  rec.startedMs = st->startedMs;
  rec.result = std::string(name(v1::RESULT_RUNNING));
  rec.reason = "incoming from " + req.source();
  (void)node_.audit().beginMigration(rec);
  std::lock_guard lk(mu_);
  active_[id] = st;
  LXMIG_LOG(kInfo, kLog) << "prepared incoming migration " << id << " of " << spec.name << " from " << req.source();
  return okStatus();
}

Result<v1::TransferReply> Incoming::receive(const ChunkSource& next, bool checksums) {
  v1::TransferChunk c;
  std::shared_ptr<State> st;
  std::unique_ptr<TreeWriter> images, rootfs;
  const std::string& nodeName = node_.config().node;
  bool rounds = false;  // a stream of pre-copy rounds (not the images after the dump)
  std::set<std::string> lazyInputs;  // what CRIU's lazy-pages daemon reads at start-up, seen
  bool lazyTried = false;
  for (;;) {
    auto more = next(c);
    if (!more.ok()) return more.status().withContext("target " + nodeName);
    if (!*more) break;
    if (!st) {
      LXMIG_ASSIGN_OR_RETURN(st, find(c.migration_id()));
      images = std::make_unique<TreeWriter>(st->imagesDir, checksums);
      rootfs = std::make_unique<TreeWriter>(st->stagingDir + "/rootfs", checksums);
    }
    st->lastActivityMs = wallMs();
    const bool isImages = c.area() == v1::TransferChunk::IMAGES;
    rounds |= isImages && startsWith(c.path(), "rounds");
    // Pre-copy's images after the dump (the source sends inventory.img and
    // pstree.img first): once both are complete, CRIU's lazy-pages daemon
    // can start, and its start-up runs while the rest arrives.
    bool startLazy = false;
    if (isImages && !rounds) {
      if (c.path() == "inventory.img" || c.path() == "pstree.img") lazyInputs.insert(c.path());
      else if (lazyInputs.size() == 2 && !lazyTried) startLazy = lazyTried = true;
    }
    TreeWriter& w = isImages ? *images : *rootfs;
    if (auto s = w.apply(c); !s.ok()) return s.withContext("target " + nodeName);
    if (startLazy) {  // the next file's header closed the second of them
      std::lock_guard op(st->opMu);
      if (st->roundsApplied && !st->restored && !st->lazyEarly) {
        auto d = node_.lxc().spawnLazyPages(st->imagesDir);
        if (d.ok()) st->lazyEarly = std::make_unique<Child>(std::move(*d));
        else LXMIG_LOG(kInfo, kLog) << "early lazy-pages start: " << d.status().toString();
      }
    }
  }
  v1::TransferReply r;
  if (!st) return r;
  LXMIG_RETURN_IF_ERROR(images->finish().withContext("target " + nodeName));
  LXMIG_RETURN_IF_ERROR(rootfs->finish().withContext("target " + nodeName));
  if (rounds) {
    std::lock_guard lk(st->pagesMu);
    if (!st->pages) st->pages = std::make_unique<PageStore>(st->imagesDir);
    LXMIG_RETURN_IF_ERROR(st->pages->applyRounds().withContext("target " + nodeName + ": page store"));
    st->roundsApplied = true;
  }
  r.set_bytes(images->bytes() + rootfs->bytes());
  r.set_files(images->files() + rootfs->files());
  return r;
}

Status Incoming::prelayout(const v1::PrelayoutRequest& req) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(req.migration_id()));
  std::map<uint32_t, PageSet> predicted;
  for (const auto& p : req.procs()) {
    if (p.ranges_size() % 2) return invalidArgument("prelayout of pid " + std::to_string(p.vpid()) + ": odd range list");
    PageSet& set = predicted[p.vpid()];
    for (int i = 0; i < p.ranges_size(); i += 2) set.add(p.ranges(i), p.ranges(i + 1));
  }
  std::lock_guard op(st->opMu);
  if (st->restored || st->prelayoutDone.valid())
    return failedPrecondition("migration " + req.migration_id() + ": prelayout comes once, before the restore");
  st->lastActivityMs = wallMs();
  State* s = st.get();  // outlives the thread: its future is joined first
  s->prelayoutDone = std::async(std::launch::async, [s, predicted = std::move(predicted)] {
    const int64_t t0 = monotonicNs();
    std::lock_guard lk(s->pagesMu);
    if (s->pages) s->prelayoutStats = s->pages->prelayout(predicted);
    s->prelayoutMs = (monotonicNs() - t0) / 1000000;
    if (!s->prelayoutStats.ok()) LXMIG_LOG(kWarn, kLog) << s->prelayoutStats.status().toString();
  });
  return okStatus();
}

void Incoming::awaitPrelayout(State& s) {
  if (s.prelayoutDone.valid()) s.prelayoutDone.wait();
}

Result<v1::RestoreReply> Incoming::restore(const std::string& id, bool lazy, const v1::NetState& net) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(id));
  std::lock_guard op(st->opMu);
  const auto& cfg = node_.config();
  const std::string& name = st->spec.name;
  st->lastActivityMs = wallMs();
  auto fail = [&](const Status& s) {
    (void)node_.lxc().destroy(name);
    (void)node_.releaseAddress(st->spec);
    dropImportedNet(*st);
    return s.withContext("restore on " + cfg.node);
  };
  // A device decided in PREPARE must still be there.
  for (const auto& [path, dev] : st->devices) {
    auto now = devices::statDevice(dev.path);
    if (!now.ok() || now->id() != dev.id())
      return fail(failedPrecondition("device " + dev.path + " (" + dev.id() + ", for " + path + ") vanished from " +
                                     cfg.node + " since PREPARE"));
  }
  LXMIG_RETURN_IF_ERROR(makeDirs(node_.lxc().dir(name), 0700));
  if (::rename((st->stagingDir + "/rootfs").c_str(), node_.lxc().rootfs(name).c_str()) != 0)
    return fail(Status::fromErrno("rename", node_.lxc().rootfs(name)));
  if (auto s = node_.lxc().define(node_.paramsFor(st->spec), true); !s.ok()) return fail(s);
  if (auto s = node_.saveSpec(st->spec); !s.ok()) return fail(s);
  v1::RestoreReply r;
  int64_t t = monotonicNs();
  // The container's firewall chain and conntrack entries are in place
  // before it resumes: its first packet after restore must pass.
  if (!net.rules_json().empty()) {
    if (auto s = node_.firewall().importContainer(net.rules_json()); !s.ok()) return fail(s);
    st->rulesImported = true;
  }
  if (!net.conntrack().empty()) {
    if (cfg.failAt == "conntrack-import")
      return fail(internalError("create conntrack entries: injected fault (lxmigd --fail-at conntrack-import)"));
    auto entries = net::decodeConntrack(net.conntrack());
    if (!entries.ok()) return fail(entries.status());
    auto ct = net::importConntrack(*entries);
    if (!ct.ok()) return fail(ct.status());
    st->conntrackImported = std::move(*entries);
    r.set_conntrack_imported(static_cast<uint32_t>(ct->created + ct->updated));
  }
  r.set_net_import_ms((monotonicNs() - t) / 1000000);
  t = monotonicNs();
  awaitPrelayout(*st);
  if (st->prelayoutDone.valid()) {
    r.set_prelayout_wait_ms((monotonicNs() - t) / 1000000);
    r.set_prelayout_ms(st->prelayoutMs);
    if (st->prelayoutStats.ok())
      r.set_prelayout_bytes(st->prelayoutStats->movedBytes + st->prelayoutStats->copiedBytes);
    t = monotonicNs();
  }
  {
    std::lock_guard lk(st->pagesMu);
    if (st->pages) {
      auto as = st->pages->assemble();
      if (!as.ok()) return fail(as.status().withContext("assemble images"));
      r.set_assemble_ms((monotonicNs() - t) / 1000000);
      r.set_assembled_copied_bytes(as->copiedBytes);
      r.set_assembled_moved_bytes(as->movedBytes);
      t = monotonicNs();
    }
  }
  if (lazy) {
    Result<Child> d =
        st->lazyEarly ? Result<Child>(std::move(*st->lazyEarly)) : node_.lxc().spawnLazyPages(st->imagesDir);
    st->lazyEarly.reset();
    if (d.ok())
      if (auto s = node_.lxc().awaitLazyPages(st->imagesDir, *d); !s.ok()) d = s;
    if (!d.ok()) return fail(d.status());
    st->lazyPages = std::make_shared<Child>(std::move(*d));
    if (auto s = node_.beginMemoryFill(name, id, st->lazyPages->pid(), st->imagesDir); !s.ok()) {
      st->lazyPages.reset();
      return fail(s.withContext("record the memory fill of `" + name + "`"));
    }
    r.set_lazy_start_ms((monotonicNs() - t) / 1000000);
    t = monotonicNs();
  }
  st->lazyEarly.reset();  // not lazy after all
  if (auto s = node_.lxc().restore(name, st->imagesDir, lazy); !s.ok()) {
    st->lazyPages.reset();
    node_.endMemoryFill(name);
    return fail(s);
  }
  st->restored = true;
  st->lastActivityMs = wallMs();
  if (auto s = node_.lxc().thaw(name); !s.ok()) return fail(s);
  r.set_restore_ms((monotonicNs() - t) / 1000000);
  t = monotonicNs();
  if (auto s = node_.claimAddress(st->spec); !s.ok()) return fail(s);
  r.set_cutover_ms((monotonicNs() - t) / 1000000);
  r.set_init_pid(node_.lxc().initPid(name));
  LXMIG_LOG(kInfo, kLog) << "restored " << name << " (migration " << id << ") in " << r.restore_ms() << " ms";
  return r;
}

void Incoming::dropImportedNet(State& s) {
  if (s.rulesImported) {
    if (auto st = node_.firewall().removeContainer(s.spec.name); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
    s.rulesImported = false;
  }
  if (!s.conntrackImported.empty()) {
    if (auto n = net::deleteConntrackEntries(s.conntrackImported); !n.ok())
      LXMIG_LOG(kWarn, kLog) << n.status().toString();
    s.conntrackImported.clear();
  }
}

void Incoming::reapIdle(int64_t idleMs) {
  std::vector<std::string> idle, orphaned;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, st] : active_)
      if (wallMs() - st->lastActivityMs > idleMs) (st->restored ? orphaned : idle).push_back(id);
  }
  for (const auto& id : idle) (void)abort(id, "source silent for " + std::to_string(idleMs / 1000) + " s");
  // Restored and running here, and the source never said COMMIT (it died,
  // or its notice got lost): the copy here is the one that runs, so it is
  // this node's container now. A source that comes back finds it running
  // here and removes its frozen copy.
  for (const auto& id : orphaned) {
    LXMIG_LOG(kWarn, kLog) << "migration " << id << ": restored here, source silent for " << idleMs / 1000
                           << " s: committing";
    (void)node_.audit().addEvent(id, "warn", "source silent after the restore: committed by the target");
    if (auto st = commit(id); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  }
}

void Incoming::discard(const std::string& id, State& s) {
  awaitPrelayout(s);  // it works on the images about to go
  s.lazyEarly.reset();
  if (s.lazyPages) {
    s.lazyPages.reset();  // a daemon still running serves a container being destroyed
    node_.endMemoryFill(s.spec.name);
  }
  if (!s.restored) {
    const std::string logs = node_.config().stateDir + "/logs/" + id;
    keepCriuLogs(s.imagesDir, logs);
    // For a post-mortem of a failed restore: LXMIG_KEEP_FAILED_IMAGES=1 in
    // the agent's environment keeps the whole image set with the logs.
    if (const char* keep = std::getenv("LXMIG_KEEP_FAILED_IMAGES"); keep && std::string(keep) == "1")
      if (makeDirs(logs, 0700).ok()) (void)runCommand({"cp", "-a", s.imagesDir, logs + "/images"});
  }
  (void)removeTree(s.stagingDir);
  (void)removeTree(s.imagesDir);
  node_.unreserve(s.spec.name);
  std::lock_guard lk(mu_);
  active_.erase(id);
}

Status Incoming::commit(const std::string& id) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(id));
  std::lock_guard op(st->opMu);
  LXMIG_RETURN_IF_ERROR(find(id).status());  // aborted meanwhile
  if (!st->restored) return failedPrecondition("migration " + id + " was not restored on " + node_.config().node);
  (void)node_.audit().finishMigration(id, std::string(name(v1::RESULT_COMMITTED)), "", wallMs(), 0, -1, wallMs() - st->startedMs);
  if (st->lazyPages && st->lazyPages->running()) {
    // The container runs and is an ordinary container of this node now; its
    // memory is still being filled from the local images, which go once the
    // daemon is done.
    node_.unreserve(st->spec.name);
    {
      std::lock_guard lk(mu_);
      active_.erase(id);
    }
    std::thread([this, id, st] {
      // Never killed: a container whose daemon dies reads zeros where its
      // memory has not arrived yet. A daemon that takes long is reported.
      auto rc = st->lazyPages->wait(600000);
      if (!rc.ok() && rc.status().code() == Code::kDeadlineExceeded) {
        LXMIG_LOG(kWarn, kLog) << "lazy-pages daemon of migration " << id << " still fills `" << st->spec.name
                               << "` after 10 minutes";
        (void)node_.audit().addEvent(id, "warn", "lazy-pages daemon still running after 10 minutes");
        rc = st->lazyPages->wait(-1);
      }
      if (!rc.ok() || *rc != 0) {
        std::string why = rc.ok() ? "exit code " + std::to_string(*rc) : rc.status().message();
        LXMIG_LOG(kError, kLog) << "lazy-pages daemon of migration " << id << " failed (" << why
                                << "): container `" << st->spec.name << "` may miss memory; log kept in "
                                << node_.config().stateDir << "/logs/" << id;
        (void)node_.audit().addEvent(id, "error", "lazy-pages daemon failed: " + why);
        (void)makeDirs(node_.config().stateDir + "/logs/" + id, 0700);
        auto log = readFile(st->imagesDir + "/lazy-pages.log");
        if (log.ok()) (void)writeFileAtomic(node_.config().stateDir + "/logs/" + id + "/lazy-pages.log", *log, 0600);
      } else {
        (void)node_.audit().addEvent(id, "info", "lazy-pages daemon filled all memory");
      }
      st->lazyPages.reset();
      node_.endMemoryFill(st->spec.name);
      (void)removeTree(st->stagingDir);
      (void)removeTree(st->imagesDir);
    }).detach();
    return okStatus();
  }
  discard(id, *st);
  return okStatus();
}

Status Incoming::abort(const std::string& id, const std::string& reason) {
  auto r = find(id);
  if (!r.ok()) return okStatus();  // nothing here: already aborted or never prepared
  auto st = *r;
  std::lock_guard op(st->opMu);
  if (!find(id).ok()) return okStatus();  // committed or aborted meanwhile
  const std::string& name = st->spec.name;
  // Only a container this migration created is destroyed.
  if (st->restored || (node_.lxc().defined(name) && !pathExists(st->stagingDir + "/rootfs"))) {
    (void)node_.lxc().destroy(name);
    (void)node_.releaseAddress(st->spec);
  }
  dropImportedNet(*st);
  discard(id, *st);
  (void)node_.audit().finishMigration(id, std::string(lxmig::name(v1::RESULT_ABORTED)), reason, wallMs(), 0, -1, wallMs() - st->startedMs);
  LXMIG_LOG(kInfo, kLog) << "aborted incoming migration " << id << ": " << reason;
  return okStatus();
}

}  // namespace lxmig::migration
