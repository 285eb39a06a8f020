#include "lxmig/migration/source.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "images_place.h"
#include "journal.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/criu/held_pages.h"
#include "lxmig/criu/image.h"
#include "lxmig/migration/checkpoint.h"
#include "lxmig/proto/vocabulary.h"
#include "lxmig/tracking/dirty_tracker.h"
#include "mode_model.h"
#include "precopy.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "migration";
// In the images directory while CRIU dumps (pre-copy): never sent.
constexpr const char* kHeldPagesFile = "lxmig-held-pages";
// How long a migration waits for the memory of the previous one to arrive.
constexpr int64_t kMemoryFillWaitMs = 300000;
// A target that does not confirm an abort after the restore was sent may
// run the container: the abort is asked again this often before giving up.
constexpr int kAbortAttemptsAfterRestore = 5;
// Passes over the writable area before the freeze: at most this many in
// SYNC, which stops once a pass sends less than kTreeSettledBytes or more
// than half the pass before; memory rounds that took kTreeRefreshAfterMs
// or longer are followed by one more.
constexpr int kMaxTreePasses = 5;
constexpr uint64_t kTreeSettledBytes = 4 << 20;
constexpr int64_t kTreeRefreshAfterMs = 1000;
// The stop reason of the round that follows those passes.
constexpr const char* kRoundAfterTree = "one more round after the writable area's passes";

Status cancelledByOperator() { return cancelled("cancelled by the operator"); }

std::string kv(const char* key, int64_t v) { return std::string(key) + "=" + std::to_string(v); }

}  // namespace

std::string newMigrationId() {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard lk(mu);
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

Source::Source(SourceContext ctx, v1::MigrateRequest req, ProgressFn progress, CancelledFn cancelled)
    : ctx_(std::move(ctx)), req_(std::move(req)), cancelled_(std::move(cancelled)), t0_(monotonicNs()) {
  rep_.set_id(newMigrationId());
  rep_.set_container(req_.container());
  rep_.set_source(ctx_.host.nodeName());
  rep_.set_target(req_.target());
  rep_.set_mode(req_.mode());
  rep_.set_tracker(req_.tracker());
  rep_.set_reason(req_.reason().empty() ? "operator" : req_.reason());
  rep_.set_started_ms(wallMs());
  journal_ = std::make_unique<Journal>(ctx_.audit, rep_);
  progress_ = std::make_unique<Progressor>(std::move(progress), rep_.id());
  imagesDir_ = ctx_.host.imagesRoot() + "/" + rep_.id();
}

Source::~Source() { stopSupervisor(); }

// Registers a stream with the supervisor for as long as it lives here.
class Source::LiveStream {
 public:
  LiveStream(Source& s, transport::ChunkWriter* w) : s_(s) { s_.setLive(w); }
  ~LiveStream() { s_.setLive(nullptr); }
  LiveStream(const LiveStream&) = delete;
  LiveStream& operator=(const LiveStream&) = delete;

 private:
  Source& s_;
};

// Work on this node in the frozen window (CRIU, the final scan, rewriting
// the images): the target is not waited for, so no stall is counted.
class Source::LocalWork {
 public:
  explicit LocalWork(Source& s) : s_(s) { s_.localWork_ = true; }
  ~LocalWork() {
    s_.progressed();
    s_.localWork_ = false;
  }
  LocalWork(const LocalWork&) = delete;
  LocalWork& operator=(const LocalWork&) = delete;

 private:
  Source& s_;
};

void Source::setLive(transport::ChunkWriter* w) {
  std::lock_guard sl(streamMu_);
  live_ = w;
}

void Source::supervise() {
  std::unique_lock lk(superviseMu_);
  while (!superviseCv_.wait_for(lk, std::chrono::milliseconds(50), [this] { return superviseStop_; })) {
    const Stage stage = stage_;
    if (stage == Stage::kRestoreSent) return;  // the source waits for the target's answer now
    bool breakIt = cancelled();
    if (stage == Stage::kFrozen && ctx_.stallLimitMs > 0) {
      if (localWork_) progressed();
      if ((monotonicNs() - progressNs_) / 1000000 >= ctx_.stallLimitMs) breakIt = stalled_ = true;
    }
    if (!breakIt) continue;
    std::lock_guard sl(streamMu_);
    if (live_) live_->cancel();  // idempotent; the stream's user sees it fail
  }
}

void Source::stopSupervisor() {
  {
    std::lock_guard lk(superviseMu_);
    superviseStop_ = true;
  }
  superviseCv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
}

Status Source::stallError() const {
  return unavailable("target " + req_.target() + " took no data for " + std::to_string(ctx_.stallLimitMs / 1000) +
                     " s while `" + spec_.name + "` was frozen (stall limit)");
}

v1::MigrationReport Source::run() {
  journal_->begin(rep_.reason());
  supervisor_ = std::thread([this] { supervise(); });
  progress_->phase(v1::PHASE_START, 0);  // the client learns the id before anything can block
  using Step = Status (Source::*)();
  static constexpr Step kSteps[] = {&Source::validate,  &Source::awaitMemory, &Source::checkGroup,   &Source::prepare,
                                    &Source::sync,      &Source::precopy,     &Source::compareNetns, &Source::freeze,
                                    &Source::finalScan, &Source::dump,        &Source::rewrite,      &Source::exportNet,
                                    &Source::transfer,  &Source::restore};
  for (Step step : kSteps) {
    Status st = (this->*step)();
    // The operator's cancel is honoured between any two phases until the
    // restore is sent (inside long phases the streams check it too), and
    // it is the reason given: a stream it broke says less.
    if (stage_ < Stage::kRestoreSent && cancelled()) st = cancelledByOperator();
    if (!st.ok()) return abort(st);
  }
  commit();
  return finish(v1::RESULT_COMMITTED, okStatus());
}

Status Source::cancel() {
  operatorCancel_ = true;
  if (stage_ != Stage::kRestoreSent) return okStatus();  // run() sees it between phases, the supervisor in them
  // The restore is the target's now: it stops it unless it is done. The
  // answer to the restore (which run() waits for) then says so.
  return target_->abort(rep_.id(), "cancelled by the operator", 10, true);
}

v1::MigrationReport Source::finish(v1::MigrationResult result, const Status& st) {
  journal_->finish(result, st, (monotonicNs() - t0_) / 1000000);
  return rep_;
}

// ---- validate: nothing reserved yet, a refusal costs nothing ----
Status Source::validate() {
  const std::string& self = ctx_.host.nodeName();
  if (req_.container().empty()) return invalidArgument("no container name given");
  LXMIG_ASSIGN_OR_RETURN(spec_, ctx_.host.spec(req_.container()));
  if (req_.target().empty()) return invalidArgument("no target node given (--to)");
  if (req_.target() == self) return invalidArgument("container `" + spec_.name + "` already runs on " + self);
  if (rep_.mode() != v1::MODE_AUTO && rep_.mode() != v1::MODE_PRE_COPY && rep_.mode() != v1::MODE_STOP_AND_COPY)
    return invalidArgument("unknown migration mode `" + std::string(name(rep_.mode())) +
                           "` (pre-copy or stop-and-copy)");
  // The tracker decides: "none" is stop-and-copy (DESIGN.md, dirty tracking).
  if (rep_.mode() != v1::MODE_STOP_AND_COPY) {
    LXMIG_ASSIGN_OR_RETURN(const tracking::TrackerBackend* b,
                           tracking::chooseTracker(std::string(name(req_.tracker()))));
    if (std::string(b->name) != "none") backend_ = b;
  }
  if (rep_.mode() == v1::MODE_AUTO && backend_) chooseMode();
  v1::Tracker used = v1::TRACKER_NONE;
  if (backend_) (void)parse(backend_->name, &used);
  journal_->setMode(backend_ ? v1::MODE_PRE_COPY : v1::MODE_STOP_AND_COPY, used);
  LXMIG_ASSIGN_OR_RETURN(target_, ctx_.peers.connect(req_.target()));
  const container::RunState rs = ctx_.host.state(spec_.name);
  if (rs != container::RunState::kRunning)
    return failedPrecondition("container `" + spec_.name + "` is " + container::runStateName(rs) + ", not RUNNING");
  LXMIG_RETURN_IF_ERROR(placeDump());
  LXMIG_ASSIGN_OR_RETURN(reservation_, ctx_.reservations.reserve(spec_.name, "migrating to " + req_.target(),
                                                                 node::ReservationKind::kMigratingOut));
  stage_ = Stage::kReserved;
  return okStatus();
}

// A stop-and-copy dump holds the container's memory here until the target
// has it: in the tmpfs when it has room, else on disk; refused when neither
// does. Pre-copy's dump writes no page (its rounds carry them): the tmpfs
// unless only the disk has room for a dump with every page (its fallback).
Status Source::placeDump() {
  auto place = placeImages(ctx_.host, "source " + ctx_.host.nodeName(), ctx_.host.memoryBytes(spec_.name), 0);
  if (!place.ok()) return backend_ ? okStatus() : place.status();
  imagesDir_ = place->root + "/" + rep_.id();
  if (!place->why.empty()) note("info", "source " + ctx_.host.nodeName() + ": " + place->why);
  return okStatus();
}

void Source::note(const std::string& level, const std::string& text) {
  rep_.add_events(level + ": " + text);
  journal_->event(level, text);
}

// ---- auto: the mode whose frozen window this node predicts shorter ----
void Source::chooseMode() {
  const std::string& self = ctx_.host.nodeName();
  std::vector<FrozenSample> samples;
  std::string lastPreCopy;  // this container's newest pre-copy move: its dirty rate
  auto past = ctx_.audit.listMigrations({.result = std::string(name(v1::RESULT_COMMITTED)), .limit = 100});
  for (const store::MigrationRecord& m : past.value_or({})) {
    if (m.source != self || m.reason == "checkpoint" || m.downtimeMs <= 0) continue;
    const bool pre = m.mode == name(v1::MODE_PRE_COPY);
    if (!pre && m.mode != name(v1::MODE_STOP_AND_COPY)) continue;
    const char* sizing = pre ? "precopy" : "transfer";
    auto p = std::find_if(m.phases.begin(), m.phases.end(), [&](const auto& x) { return x.name == sizing; });
    if (p == m.phases.end()) continue;
    samples.push_back({pre, static_cast<uint64_t>(std::max<int64_t>(0, p->bytes)), m.downtimeMs});
    if (pre && lastPreCopy.empty() && m.container == spec_.name) lastPreCopy = m.id;
  }
  double dirtyRate = 0;
  if (!lastPreCopy.empty())
    if (auto m = ctx_.audit.getMigration(lastPreCopy); m.ok() && !m->rounds.empty())
      dirtyRate = m->rounds.back().dirtyRateBps;
  const ModeModel::Choice c = ModeModel::fit(samples).choose(ctx_.host.memoryBytes(spec_.name), dirtyRate);
  if (!c.preCopy) backend_ = nullptr;
  note("info", "mode auto: " + c.why);
}

// ---- a group moves whole: a container that shares IPC with processes
// outside it is refused (merged first); checked once a lazy restore's
// memory has arrived, when no daemon of the host holds its memory ----
Status Source::checkGroup() { return ctx_.host.checkMovesAlone(spec_.name); }

// ---- the memory of the migration that brought it here must be complete ----
Status Source::awaitMemory() {
  auto fill = ctx_.host.memoryFill(spec_.name);
  if (!fill) return okStatus();
  progress_->phase(v1::PHASE_AWAIT_MEMORY, 0);
  PhaseClock ph(*journal_, v1::PHASE_AWAIT_MEMORY);
  const std::string what = "memory of `" + spec_.name + "` is still arriving from migration " + fill->migrationId +
                           " (lazy restore, daemon pid " + std::to_string(fill->pid) + ")";
  const std::string fillId = fill->migrationId;
  LXMIG_LOG(kInfo, kLog) << what << ": the migration waits for it";
  const int64_t deadline = monotonicNs() + kMemoryFillWaitMs * 1000000;
  for (; fill; fill = ctx_.host.memoryFill(spec_.name)) {
    Status stop = cancelled()                ? cancelledByOperator()
                  : monotonicNs() > deadline ? unavailable(what + " after " + std::to_string(kMemoryFillWaitMs / 1000) +
                                                           " s; try again once it is complete")
                                             : okStatus();
    if (!stop.ok()) {
      ph.end(stop);
      return stop;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ph.end(okStatus(), 0, "waited for the lazy restore of migration " + fillId + " to fill memory");
  return okStatus();
}

// ---- PREPARE on the target: failures here cost nothing ----
Status Source::prepare() {
  progress_->phase(v1::PHASE_PREPARE, 0);
  PhaseClock ph(*journal_, v1::PHASE_PREPARE);
  v1::PrepareRequest pr;
  pr.set_migration_id(rep_.id());
  pr.set_source(ctx_.host.nodeName());
  *pr.mutable_spec() = spec_.toProto();
  pr.set_memory_bytes(ctx_.host.memoryBytes(spec_.name));
  reservedBytes_ = pr.memory_bytes();
  pr.set_expected_bytes(transport::treeBytes(ctx_.host.rootfs(spec_.name)));
  pr.set_source_boot_id(bootId());
  // Its devices, checked by the target before anything moves.
  auto need = ctx_.host.deviceNeeds(spec_.name);
  if (!need.ok()) {
    Status st = need.status().withContext("devices of `" + spec_.name + "`");
    ph.end(st);
    return st;
  }
  for (const auto& d : *need) *pr.add_devices_needed() = container::devices::toProto(d);
  if (auto offer = ctx_.host.deviceOffer(); offer.ok())
    for (const auto& d : *offer) *pr.add_source_offer() = container::devices::toProto(d);
  // Its network as liblxc laid it out: the target builds the same before
  // the freeze (net/netns.h). Without it, the images carry the namespace.
  if (auto l = ctx_.host.netnsLayout(spec_.name); l.ok()) {
    v1::NetnsLayout* p = pr.mutable_netns();
    p->set_hwaddr(l->hwaddr);
    p->set_mtu(static_cast<uint32_t>(l->mtu));
    p->set_gateway(l->gateway);
    for (const auto& a : l->addresses) {
      v1::NetnsAddress* x = p->add_addresses();
      x->set_ip(a.ip);
      x->set_prefix_len(static_cast<uint32_t>(a.prefixLen));
      x->set_broadcast(a.broadcast);
    }
  } else if (l.status().code() != Code::kUnimplemented) {
    note("info", "network namespace saved by CRIU: " + l.status().message());
  }
  // Its /dev/shm, when lxmig's standard tmpfs holding nothing or plain
  // files: the target mounts one (container/dev_shm.h), the files follow
  // during the dump. Otherwise CRIU carries its files.
  container::DevShmFiles shmFiles;
  if (auto why = ctx_.host.devShmProblem(spec_.name, container::DevShmHolds::kPlainFiles, &shmFiles);
      why.ok() && why->empty())
    pr.set_dev_shm_standard(true);
  else if (why.ok()) note("info", "/dev/shm saved by CRIU: " + *why);
  // Its /dev, when liblxc's tree: the target builds one (container/dev_tree.h).
  if (auto why = ctx_.host.devProblem(spec_.name, &devBootId_); why.ok() && why->empty())
    pr.set_dev_boot_id(devBootId_);
  else if (why.ok()) note("info", "/dev saved by CRIU: " + *why);
  stage_ = Stage::kPrepareSent;
  auto reply = target_->prepare(pr);
  ph.end(reply.status());
  LXMIG_RETURN_IF_ERROR(reply.status());
  dataPort_ = static_cast<uint16_t>(reply->data_port());
  targetNetnsShape_ = reply->netns_shape();
  devShmPrepared_ = reply->dev_shm_prepared();
  devShmTakesFiles_ = devShmPrepared_ && reply->dev_shm_takes_files();
  devPrepared_ = reply->dev_prepared() && !pr.dev_boot_id().empty();
  if (!reply->netns_not_prepared().empty())
    note("info", "network namespace saved by CRIU: " + reply->netns_not_prepared().substr(0, 300));
  if (!reply->images_staging().empty()) note("info", "target " + target_->name() + ": " + reply->images_staging());
  useLink_ = dataPort_ != 0;
  stage_ = Stage::kPrepared;
  return okStatus();
}

// A container that grows while its rounds go (a heap warming up, a cache
// filling) outgrows the room PREPARE reserved on the target: ask for its
// size and a quarter more before the round that would pass it.
Status Source::reserveFor(uint64_t footprint) {
  if (footprint <= reservedBytes_) return okStatus();
  v1::ReserveRequest rr;
  rr.set_migration_id(rep_.id());
  rr.set_memory_bytes(footprint + footprint / 4);
  LXMIG_RETURN_IF_ERROR(target_->reserve(rr));
  note("info", "`" + spec_.name + "` grew to " + humanBytes(footprint) + " since PREPARE (" +
                   humanBytes(reservedBytes_) + "): target " + target_->name() + " made room for " +
                   humanBytes(rr.memory_bytes()));
  reservedBytes_ = rr.memory_bytes();
  return okStatus();
}

// Bulk streams: the target's data link when it offers one (DESIGN.md: gRPC
// stays far below the link rate), the Transfer RPC otherwise. A link that
// cannot be opened is a warning, not a failure: the rest of this migration
// uses the RPC.
std::unique_ptr<transport::ChunkWriter> Source::openStream() {
  if (useLink_) {
    auto w = target_->openDataLink(dataPort_);
    if (w.ok()) return std::move(*w);
    useLink_ = false;
    journal_->warn("data link to " + req_.target() + " unavailable, bulk data goes over gRPC: " + w.status().message());
  }
  return target_->openRpcStream();
}

Result<transport::Manifest> Source::sendTree(transport::ChunkWriter& w, v1::TransferChunk::Area area,
                                             const std::string& root, const transport::Manifest& previous,
                                             uint64_t* bytes, const std::map<std::string, uint64_t>* resume,
                                             const std::vector<std::string>& first) {
  return transport::sendTree(
      rep_.id(), area, root, previous, [&](v1::TransferChunk& c) { return !cancelled() && w.write(c); },
      [&](uint64_t n) {
        *bytes += n;
        progressed();
        progress_->add(n);
      },
      resume, first);
}

// ---- SYNC: the writable area while the container runs ----
// Passes over the writable area from manifest_ (all of it the first time)
// while they shrink: each sends what changed during the one before (blocks
// of changed files); they stop once one sends less than kTreeSettledBytes
// or more than half the one before. The frozen window carries only what
// changes during the last.
Result<int> Source::treePasses(transport::ChunkWriter& w, uint64_t* bytes) {
  const std::string root = ctx_.host.rootfs(spec_.name);
  int passes = 0;
  for (uint64_t last = UINT64_MAX; passes < kMaxTreePasses;) {
    const uint64_t before = *bytes;
    LXMIG_ASSIGN_OR_RETURN(manifest_, sendTree(w, v1::TransferChunk::ROOTFS, root, manifest_, bytes));
    ++passes;
    const uint64_t now = *bytes - before;
    if (now < kTreeSettledBytes || (last != UINT64_MAX && now > last / 2)) break;
    last = now;
  }
  return passes;
}

Status Source::sync() {
  progress_->phase(v1::PHASE_SYNC, transport::treeBytes(ctx_.host.rootfs(spec_.name)));
  PhaseClock ph(*journal_, v1::PHASE_SYNC);
  uint64_t bytes = 0;
  int passes = 0;
  std::string via;
  Status st = treePassesOnStream(&bytes, &passes, &via);
  rep_.set_bytes(rep_.bytes() + bytes);
  ph.end(st, bytes, "via " + via + " " + kv("passes", passes));
  return st.withContext("sync");
}

// The passes on a stream of their own (its end tells that the target
// applied them); `via` (optional) is told which stream it was.
Status Source::treePassesOnStream(uint64_t* bytes, int* passes, std::string* via) {
  auto w = openStream();
  LiveStream live(*this, w.get());
  auto n = treePasses(*w, bytes);
  if (via) *via = w->kind();
  Status st = w->finish().status();
  if (st.ok() && !n.ok()) st = n.status();
  if (st.ok()) *passes = *n;
  return st;
}

// ---- PRE-COPY: memory rounds while the container runs ----
// One round on a stream of its own (when the stream ends, the target folds
// the round into its page store). True when the stop rule ended the rounds.
// With a `last` reason the rule is not asked: the round is sent, and the
// reason is the one the report and the audit give for the end.
Result<bool> Source::memoryRound(const transport::BytesCallback& counted, const char* last) {
  auto w = openStream();
  LiveStream live(*this, w.get());
  auto r = pc_->round([&](v1::TransferChunk& c) { return !cancelled() && w->write(c); }, counted, !last);
  Status fin = w->finish().status();
  if (!r.ok()) {
    if (!fin.ok() && r.status().code() == Code::kUnavailable) return fin;  // the target's reason
    return r.status();
  }
  if (!fin.ok()) return fin;
  if (last) r->set_stop(last);
  journal_->round(*r);
  progress_->round(r->round(), r->dirty_pages() * tracking::kPageSize, r->predicted_downtime_ms());
  return !r->stop().empty();
}

Status Source::precopy() {
  if (!backend_) return okStatus();
  const uint64_t memBytes = ctx_.host.memoryBytes(spec_.name);
  progress_->phase(v1::PHASE_PRECOPY, memBytes);
  PhaseClock ph(*journal_, v1::PHASE_PRECOPY);
  PreCopyOptions o;
  o.migrationId = rep_.id();
  o.backend = backend_;
  o.maxDowntimeMs = req_.max_downtime_ms() > 0 ? req_.max_downtime_ms() : kDefaultMaxDowntimeMs;
  o.maxRounds = req_.max_rounds() > 0 ? req_.max_rounds() : kDefaultMaxRounds;
  o.memoryBytes = memBytes;
  o.freeze = [this] { return ctx_.host.freeze(spec_.name); };
  o.thaw = [this] { return ctx_.host.thaw(spec_.name); };
  o.onScan = [this](const v1::RoundReport& r) {
    progress_->round(r.round(), r.dirty_pages() * tracking::kPageSize, r.predicted_downtime_ms());
  };
  o.beforeSend = [this](uint64_t footprint) { return reserveFor(footprint); };
  pc_ = std::make_unique<PreCopy>(o, [this] { return ctx_.host.pids(spec_.name); });
  if (Status st = pc_->start(); !st.ok()) {
    // A process that cannot be tracked: the whole container moves by
    // stop-and-copy instead (nothing was left in any process).
    journal_->warn("pre-copy impossible for `" + spec_.name + "`, falling back to stop-and-copy: " + st.message());
    pc_.reset();
    journal_->setMode(v1::MODE_STOP_AND_COPY, rep_.tracker());
    ph.end(okStatus(), 0, "fallback: " + st.message());
    return okStatus();
  }
  uint64_t bytes = 0;
  auto counted = [&](uint64_t n) {
    bytes += n;
    progress_->add(n);
  };
  Status st;
  for (bool stop = false; !stop && st.ok() && !cancelled();) {
    auto r = memoryRound(counted);
    if (r.ok()) stop = *r;
    else st = r.status();
  }
  // The writable area changed while the rounds ran: passes over it while
  // they shrink. The processes wrote meanwhile: one more round, whatever
  // the stop rule said (within the round limit), so that the frozen window
  // carries only what either changes from here on.
  uint64_t treeBytes = 0;
  int passes = 0;
  if (st.ok() && !cancelled() && (monotonicNs() - ph.startedNs()) / 1000000 >= kTreeRefreshAfterMs) {
    st = treePassesOnStream(&treeBytes, &passes).withContext("writable area before the freeze");
    if (st.ok() && !cancelled() && pc_->roundsDone() < o.maxRounds) st = memoryRound(counted, kRoundAfterTree).status();
  }
  for (const auto& wn : pc_->warnings()) rep_.add_warnings(wn);
  rep_.set_bytes(rep_.bytes() + bytes + treeBytes);
  ph.end(st, bytes + treeBytes,
         "tracker=" + std::string(backend_->name) + " rounds=" + std::to_string(pc_->roundsDone()) + " " +
             kv("writable_area_bytes", static_cast<int64_t>(treeBytes)) + " " + kv("writable_area_passes", passes));
  return st.withContext("pre-copy");
}

// ---- FREEZE: downtime starts ----
Status Source::compareNetns() {
  if (targetNetnsShape_.empty()) return okStatus();
  // Right before the freeze, so that little can change in between; what
  // could (links, addresses, routes) is glanced at again while frozen.
  auto shape = ctx_.host.netnsShape(spec_.name);
  std::string why;
  if (!shape.ok()) {
    why = shape.status().message();
  } else if (std::string diff = net::shapeDifference(*shape, targetNetnsShape_); !diff.empty()) {
    why = "the container changed it (" + diff + ")";
  } else {
    auto glance = ctx_.host.netnsGlance(spec_.name, &netnsInode_);
    if (glance.ok()) netnsGlance_ = std::move(*glance);
    else why = glance.status().message();
  }
  if (!why.empty()) {
    netnsInode_ = 0;
    note("info", "network namespace saved by CRIU: " + why);
  }
  return okStatus();
}

Status Source::freeze() {
  // The stream of the frozen window is opened first: its handshake is not
  // downtime.
  images_ = openStream();
  setLive(images_.get());  // until transfer() ends it
  tail_ = std::make_unique<transport::TailSender>(rep_.id(), v1::TransferChunk::IMAGES, imagesDir_, "pages-");
  progress_->phase(v1::PHASE_FREEZE, 0);
  PhaseClock ph(*journal_, v1::PHASE_FREEZE);
  tFreeze_ = monotonicNs();
  // Where the step's time goes: holding new packets (nftables), the
  // freezer, the isolation (nftables and the route), the accept-queue check.
  int64_t t = tFreeze_, holdUs = 0, freezeUs = 0, isolateUs = 0, acceptUs = 0;
  auto lap = [&t] {
    const int64_t now = monotonicNs();
    return (now - std::exchange(t, now)) / 1000;
  };
  // New connections wait from here (a handshake the freeze cut in half
  // would hang its client: CRIU does not carry it).
  Status st = ctx_.host.holdIncoming(spec_);
  holdUs = lap();
  if (st.ok()) st = ctx_.host.freeze(spec_.name);
  freezeUs = lap();
  if (!st.ok()) {
    (void)ctx_.host.reconnect(spec_);  // not frozen: the abort does not thaw, so let the traffic go on here
  } else {
    progressed();
    stage_ = Stage::kFrozen;
    // Nothing of the frozen copy may leave this node either: not its
    // packets, not the RSTs its sockets send when it is destroyed at commit
    // (the established flows continue on the target); its route goes.
    st = ctx_.host.isolate(spec_);
    isolateUs = lap();
  }
  if (st.ok()) {
    st = acceptWaiting();
    acceptUs = lap();
  }
  ph.end(st, 0,
         kv("hold_us", holdUs) + " " + kv("freezer_us", freezeUs) + " " + kv("isolate_us", isolateUs) + " " +
             kv("accept_check_us", acceptUs));
  return st;
}

// Connections that completed their handshake just before the freeze wait
// in an accept queue, where CRIU's dump would drop them (their clients then
// wait for good) or fail. Nothing new arrives now (isolated): the workload
// gets up to half a second to accept them, then it is frozen again.
// exportNet() refuses to go on if some still wait.
Status Source::acceptWaiting() {
  auto waiting = ctx_.host.waitingConnections(spec_.name);
  if (!waiting.ok() || *waiting == 0) return okStatus();
  const int64_t t0 = monotonicNs();
  // Its answers to them leave meanwhile (dropped, they would wait for the
  // restored socket's retransmission, a second or more); the clients'
  // packets stay held and reach it where it runs next.
  LXMIG_RETURN_IF_ERROR(ctx_.host.speak(spec_));
  LXMIG_RETURN_IF_ERROR(ctx_.host.thaw(spec_.name));
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto w = ctx_.host.waitingConnections(spec_.name);
    if (!w.ok() || *w == 0) break;
  }
  Status st = ctx_.host.freeze(spec_.name);
  if (st.ok()) st = ctx_.host.silence(spec_);
  journal_->event("info", "thawed `" + spec_.name + "` for " + std::to_string((monotonicNs() - t0) / 1000000) +
                              " ms to accept " + std::to_string(*waiting) +
                              " connection(s) that arrived before the freeze");
  return st;
}

Status Source::finalScan() {
  if (!pc_) return okStatus();
  LocalWork local(*this);
  PhaseClock ph(*journal_, v1::PHASE_FINAL_SCAN);
  auto r = pc_->finalScan();
  if (!r.ok()) {
    ph.end(r.status());
    return r.status().withContext("final scan");
  }
  final_ = std::make_unique<FinalStats>(*r);
  // What the dump will hold, for the target's prelayout: while CRIU dumps
  // here, the target lays its page store out that way, so the restore's
  // assembly has (almost) nothing to move. Only an optimisation: a target
  // that cannot (an older agent) leaves it all to the assembly.
  const int64_t tp = monotonicNs();
  v1::PrelayoutRequest plr;
  plr.set_migration_id(rep_.id());
  for (const auto& [vpid, pages] : pc_->predictedDump()) {
    auto* p = plr.add_procs();
    p->set_vpid(vpid);
    for (const auto& rg : pages.ranges()) {
      p->add_ranges(rg.start);
      p->add_ranges(rg.end);
    }
  }
  ph.end(okStatus(), 0,
         kv("dirty_pages", static_cast<int64_t>(final_->dirtyPages)) + " " +
             kv("valid_pages", static_cast<int64_t>(final_->validPages)) + " " + kv("scan_us", final_->scanUs) + " " +
             kv("predict_us", (monotonicNs() - tp) / 1000));
  prelayoutSent_ = std::async(std::launch::async, [peer = target_.get(), plr = std::move(plr), id = rep_.id()] {
    if (Status st = peer->prelayout(plr); !st.ok())
      LXMIG_LOG(kInfo, kLog) << "migration " << id << ": no prelayout on " << peer->name() << " (" << st.message()
                             << "); its restore assembles the page store";
  });
  return okStatus();
}

// ---- DUMP: CRIU's page files go to the target while CRIU still writes
// them (TailSender), the rest in TRANSFER ----
Status Source::dump() {
  auto sink = [this](v1::TransferChunk& c) { return !cancelled() && images_->write(c); };
  auto counted = [this](uint64_t n) {
    sent_ += n;
    progressed();
    progress_->add(n);
  };
  progress_->phase(v1::PHASE_DUMP, 0);
  PhaseClock ph(*journal_, v1::PHASE_DUMP);
  // A process killed or exiting since the freeze can leave the freezer
  // FREEZING; CRIU needs it FROZEN: freeze again (the network is blocked,
  // nothing of the container reaches the outside meanwhile).
  auto ensureFrozen = [this]() -> Status {
    if (ctx_.host.frozen(spec_.name)) return okStatus();
    journal_->event("warn", "container `" + spec_.name +
                                "` was no longer frozen before the dump (a process exiting?); froze it again");
    LXMIG_RETURN_IF_ERROR(ctx_.host.freeze(spec_.name));
    if (!pc_) return okStatus();
    // Whatever ran meanwhile is scanned again: pages written since the
    // final scan lose their validity on the target.
    LXMIG_ASSIGN_OR_RETURN(FinalStats again, pc_->finalScan());
    final_->dirtyPages += again.dirtyPages;
    final_->validPages = again.validPages;
    return okStatus();
  };
  Status st = ensureFrozen();
  // Pre-copy: CRIU need not write the processes' memory (most of it is on
  // the target already); rewrite() reads the rest from the frozen processes.
  const int64_t scanStart = monotonicNs();
  const int discard = pc_ && st.ok() ? static_cast<int>(pc_->pageFilesBeforeSysv()) : 0;
  const int64_t objectsScanMs = (monotonicNs() - scanStart) / 1000000;
  int64_t criuMs = 0;
  container::KeptOut out;  // of the images: the target prepared it
  if (st.ok() && netnsInode_ != 0) {
    // Frozen now: the namespace is the one compared, or CRIU saves it.
    uint64_t inode = 0;
    auto glance = ctx_.host.netnsGlance(spec_.name, &inode);
    if (glance.ok() && *glance == netnsGlance_ && inode == netnsInode_) {
      out.inode = inode;
    } else {
      netnsInode_ = 0;
      journal_->event("info", "network namespace saved by CRIU: it changed before the freeze");
    }
  }
  container::DevShmFiles shmFiles;  // what the tree pass sends into the target's /dev/shm
  if (st.ok() && devShmPrepared_) {
    // Frozen now: nothing can put a file there before the dump.
    const auto holds = devShmTakesFiles_ ? container::DevShmHolds::kPlainFiles : container::DevShmHolds::kNothing;
    auto why = ctx_.host.devShmProblem(spec_.name, holds, &shmFiles);
    if (why.ok() && why->empty()) {
      out.devShm = true;
    } else {
      shmFiles = {};
      devShmPrepared_ = false;
      journal_->event("info", "/dev/shm saved by CRIU: " + (why.ok() ? *why : why.status().message()));
    }
  }
  if (st.ok() && devPrepared_) {
    // Frozen now: the tree is the one the target built, boot id and all.
    std::string bootId;
    auto why = ctx_.host.devProblem(spec_.name, &bootId);
    if (why.ok() && why->empty() && bootId == devBootId_) {
      out.dev = true;
    } else {
      devPrepared_ = false;
      journal_->event("info", "/dev saved by CRIU: " + (!why.ok()       ? why.status().message()
                                                        : !why->empty() ? *why
                                                                        : std::string("its boot id changed")));
    }
  }
  if (st.ok() && pc_ && ctx_.criuHeldPages) {
    // CRIU built with lxmig's patch leaves out what the target holds
    // (criu/held_pages.h). Removed after the dump, before anything of the
    // directory is sent.
    const std::string held = imagesDir_ + "/" + kHeldPagesFile;
    st = makeDirs(imagesDir_, 0700);
    if (st.ok())
      st = writeFileAtomic(held, criu::serializeHeldPages(pc_->heldPages(), pc_->rebuiltSharedObjects()), 0600);
    if (st.ok()) out.heldPages = held;
  }
  int64_t treeMs = 0, sharedCompareMs = -1;
  // Where the writable area's pass spent its time: its own CPU, and its
  // waits for the stream it shares.
  int64_t treeCpuMs = 0, treeSinkNs = 0;
  uint64_t treeBytes = 0;
  if (st.ok()) {
    // The network state is taken meanwhile (exportNet): it reads what the
    // freeze and the isolation hold still, CRIU's dump changes none of it,
    // and the two share no object.
    netTaken_ = std::async(std::launch::async, [this] { return takeNet(); });
    // So is the writable area's last pass (what changed since SYNC's): the
    // container is frozen, so its tree holds still, and reading the files
    // a database rewrote to find their changed blocks (~1.3 GB for
    // PostgreSQL at scale 100) need not wait for CRIU. Its chunks share
    // the images stream with the page files' tail; the target writes each
    // area with a writer of its own, so the two may interleave.
    std::mutex streamMu;
    auto sharedSink = [&](v1::TransferChunk& c) {
      std::lock_guard lk(streamMu);
      return sink(c);
    };
    auto sharedCounted = [&](uint64_t n) {
      std::lock_guard lk(streamMu);
      counted(n);
    };
    auto treeCounted = [&](uint64_t n) {
      std::lock_guard lk(streamMu);
      treeBytes += n;
      counted(n);
    };
    Status treeSt;
    // A dump that failed stops the pass: the rollback thaws the container
    // only once it ended.
    std::atomic<bool> dumpFailed{false};
    std::thread treePass([&] {
      const int64_t t0 = monotonicNs(), cpu0 = threadCpuNs();
      const transport::ChunkSink treeSink = [&](v1::TransferChunk& c) {
        const int64_t s0 = monotonicNs();
        const bool ok = !dumpFailed && sharedSink(c);
        treeSinkNs += monotonicNs() - s0;
        return ok;
      };
      auto m = transport::sendTree(rep_.id(), v1::TransferChunk::ROOTFS, ctx_.host.rootfs(spec_.name), manifest_,
                                   treeSink, treeCounted);
      treeSt = m.status();
      if (m.ok()) manifest_ = std::move(*m);
      // Then the files of its /dev/shm, whole, into the target's tmpfs.
      if (treeSt.ok() && shmFiles.files > 0) treeSt = sendDevShm(treeSink, treeCounted);
      treeMs = (monotonicNs() - t0) / 1000000;
      treeCpuMs = (threadCpuNs() - cpu0) / 1000000;
    });
    // And so is the comparison of its shared memory with what the target
    // holds (pre-copy): the rewrite then reads only what changed.
    std::thread sharedPass([&] {
      if (!pc_) return;
      const int64_t t0 = monotonicNs();
      if (Status s = pc_->compareSharedFrozen(); !s.ok())
        LXMIG_LOG(kInfo, kLog) << rep_.id() << ": shared memory compared after the dump: " << s.toString();
      sharedCompareMs = (monotonicNs() - t0) / 1000000;
    });
    std::atomic<bool> done{false};
    localWork_ = true;
    std::thread dumper([&] {
      const int64_t criuStart = monotonicNs();
      st = ctx_.host.dump(spec_.name, imagesDir_, discard, dumpLimits(), out);
      dumpFailed = !st.ok();
      criuMs = (monotonicNs() - criuStart) / 1000000;
      localWork_ = false;  // from here on the wait is for the target
      done = true;
    });
    while (!done) {
      uint64_t n = 0;
      // Page files go while CRIU writes them. Pre-copy's discarded ones are
      // links to /dev/null, which the tail skips: the rewrite makes and
      // sends them; a CRIU built with lxmig's patch writes real ones with
      // only what the target lacks.
      if (streamError_.ok()) {
        auto r = tail_->poll(sharedSink, sharedCounted);
        if (r.ok()) n = *r;
        else streamError_ = r.status();
      }
      if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    dumper.join();
    treePass.join();
    sharedPass.join();
    if (st.ok() && !treeSt.ok()) st = treeSt.withContext("writable area");
    treeSent_ = treeSt.ok();
  }
  if (!out.heldPages.empty() && ::unlink(out.heldPages.c_str()) != 0 && errno != ENOENT && st.ok())
    st = Status::fromErrno("remove", out.heldPages);
  if (stalled_ && st.ok()) st = stallError();
  // Nothing else may touch the node's firewall (an abort) while it is read.
  if (!st.ok() && netTaken_.valid()) netTaken_.wait();
  if (st.ok()) imageBytes_ = transport::treeBytes(imagesDir_);
  // Where the step's time went: the shared memory objects' scan (pre-copy)
  // and the dump itself (CRIU, started by the agent).
  ph.end(st, imageBytes_,
         kv("streamed_during_dump", static_cast<int64_t>(sent_)) + " " + kv("objects_scan_ms", objectsScanMs) + " " +
             kv("criu_ms", criuMs) + " " + kv("writable_area_ms", treeMs) + " " +
             kv("writable_area_cpu_ms", treeCpuMs) + " " + kv("writable_area_sink_ms", treeSinkNs / 1000000) + " " +
             (sharedCompareMs >= 0 ? kv("shared_compared_ms", sharedCompareMs) + " " : std::string()) +
             kv("writable_area_bytes", static_cast<int64_t>(treeBytes)) + " " +
             kv("netns_outside", out.inode != 0 ? 1 : 0) + " " + kv("dev_shm_outside", out.devShm ? 1 : 0) + " " +
             kv("dev_shm_files", shmFiles.files) + " " + kv("dev_shm_bytes", static_cast<int64_t>(shmFiles.bytes)) +
             " " + kv("dev_outside", out.dev ? 1 : 0));
  return st;
}

// ---- REWRITE (pre-copy): pages the target holds become PARENT references
// into its page store ----
Status Source::rewrite() {
  if (!pc_) return okStatus();
  PhaseClock ph(*journal_, v1::PHASE_REWRITE);
  // Each process's delta goes to the target while it is read from the
  // frozen process into its page file: the rewrite and the transfer of the
  // delta overlap, and TRANSFER carries only what is left.
  auto sink = [this](v1::TransferChunk& c) { return !cancelled() && images_->write(c); };
  auto counted = [this](uint64_t n) {
    sent_ += n;
    progressed();
    progress_->add(n);
  };
  std::mutex growingMu;
  std::set<std::string> growing;
  auto follow = [&](const std::string& name) {
    std::lock_guard lk(growingMu);
    return growing.count(name) > 0;
  };
  const uint64_t before = sent_;
  Status st;
  std::atomic<bool> done{false};
  std::atomic<int64_t> rewrittenAt{0};
  localWork_ = true;
  std::thread rewriter([&] {
    st = pc_->rewriteDump(
        imagesDir_, *final_,
        [&](const std::string& name) {
          std::lock_guard lk(growingMu);
          growing.insert(name);
        },
        /*realFilesSent=*/true);
    localWork_ = false;  // from here on the wait is for the target
    rewrittenAt = monotonicNs();
    done = true;
  });
  for (;;) {
    const bool last = done;  // once more after the rewrite: its files are whole
    uint64_t n = 0;
    if (streamError_.ok()) {
      auto r = tail_->poll(sink, counted, follow);
      if (r.ok()) n = *r;
      else streamError_ = r.status();
    }
    if (last) break;
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  rewriter.join();
  const int64_t tailUs = (monotonicNs() - rewrittenAt) / 1000;  // the sender's wait after the last byte was read
  progressed();
  if (st.code() == Code::kFailedPrecondition && !tail_->sent().empty()) {
    // A page file went to the target, or began to: not dumped again.
    st = st.withContext("after part of the delta was sent");
  } else if (st.code() == Code::kFailedPrecondition) {
    // The dump did not number its files as expected: dump again, keeping
    // everything (the container is still frozen), and rewrite that.
    journal_->event("warn", st.message() + "; dumped again with all pages");
    final_->parentPages = final_->deltaPages = final_->criuHeldPages = 0;
    (void)removeTree(imagesDir_);
    st = ctx_.host.dump(spec_.name, imagesDir_, 0, dumpLimits(),
                        {.inode = netnsInode_, .devShm = devShmPrepared_, .dev = devPrepared_});
    if (st.ok()) st = pc_->rewriteDump(imagesDir_, *final_);
  }
  if (st.ok()) imageBytes_ = transport::treeBytes(imagesDir_);
  ph.end(st, imageBytes_,
         kv("parent_pages", static_cast<int64_t>(final_->parentPages)) + " " +
             kv("delta_pages", static_cast<int64_t>(final_->deltaPages)) + " " +
             kv("criu_held_pages", static_cast<int64_t>(final_->criuHeldPages)) + " " +
             kv("streamed_during_rewrite", static_cast<int64_t>(sent_ - before)) + " " +
             kv("list_us", final_->rewriteListUs) + " " + kv("pagemaps_us", final_->rewritePagemapUs) + " " +
             kv("read_us", final_->rewriteReadUs) + " " + kv("tail_us", tailUs));
  return st.withContext("rewrite images");
}

// ---- NETWORK STATE: the container's firewall chain and the node's
// conntrack entries of its address, taken while nothing reaches it (the
// route went at the freeze; CRIU locked its own namespace for the dump) ----
Status Source::exportNet() {
  LocalWork local(*this);
  PhaseClock ph(*journal_, v1::PHASE_NET_EXPORT);
  // Taken during the dump; a dump done again (rewrite) changes nothing of it.
  NetTaken taken = netTaken_.valid() ? netTaken_.get() : takeNet();
  Status st = taken.net.status();
  if (st.ok()) net_ = std::move(*taken.net);
  // CRIU is done with the sockets: their queues may be peeked now.
  if (st.ok()) st = ctx_.host.peekQueuedDatagrams(spec_, &net_);
  ph.end(st, net_.ByteSizeLong(),
         kv("conntrack_entries", static_cast<int64_t>(taken.entries)) + " " + kv("export_ms", taken.ms) + " " +
             kv("udp_queued", net_.udp_queued_size()) + (req_.no_conntrack() ? " (replication switched off)" : ""));
  return st.withContext("export network state");
}

Status Source::sendDevShm(const transport::ChunkSink& sink, const transport::BytesCallback& counted) {
  LXMIG_ASSIGN_OR_RETURN(UniqueFd dir, ctx_.host.openDevShm(spec_.name));
  return transport::sendTreeAt(rep_.id(), v1::TransferChunk::DEV_SHM, dir.get(), "/dev/shm of " + spec_.name, {}, sink,
                               counted)
      .status()
      .withContext("/dev/shm");
}

Source::NetTaken Source::takeNet() {
  NetTaken t;
  const int64_t t0 = monotonicNs();
  t.net = ctx_.host.exportNet(spec_, !req_.no_conntrack(), &t.entries);
  t.ms = (monotonicNs() - t0) / 1000000;
  return t;
}

// ---- TRANSFER: the rest of the images and the writable area's delta ----
Status Source::transfer() {
  progress_->phase(v1::PHASE_TRANSFER, imageBytes_ > sent_ ? imageBytes_ - sent_ : 0);
  PhaseClock ph(*journal_, v1::PHASE_TRANSFER);
  const uint64_t before = sent_;
  Status st = streamError_;
  // What CRIU left out of the processes goes with the images.
  if (st.ok()) st = ctx_.host.recordCriuGaps(spec_.name, imagesDir_).withContext("record what CRIU leaves out");
  if (st.ok()) {
    uint64_t bytes = 0;
    // What CRIU's lazy-pages daemon reads at start-up first: the target
    // starts it while the rest arrives.
    auto m = sendTree(*images_, v1::TransferChunk::IMAGES, imagesDir_, {}, &bytes, &tail_->sent(),
                      criu::kLazyPagesStartupInputs);
    st = m.status();
    // The writable area's last pass went beside CRIU's dump (dump()).
    // When CRIU remapped a file (remap-fpath.img), its --link-remap may
    // have linked it into the tree and removed it again meanwhile: the tree
    // is walked once more, so the target's copy is the tree the dump left
    // (a walk of names and times; only what differs travels).
    if (st.ok() && (!treeSent_ || pathExists(imagesDir_ + "/remap-fpath.img")))
      st = sendTree(*images_, v1::TransferChunk::ROOTFS, ctx_.host.rootfs(spec_.name), manifest_, &bytes).status();
    sent_ += bytes;
  }
  Status fin = images_->finish().status();
  setLive(nullptr);
  images_.reset();
  if (!fin.ok()) st = fin;  // the target's reason beats "stream broke" (the operator's beats both: run())
  if (stalled_) st = stallError();
  rep_.set_bytes(rep_.bytes() + sent_);
  ph.end(st, sent_, kv("after_dump", static_cast<int64_t>(sent_ - before)));
  return st.withContext("transfer");
}

// ---- RESTORE and CUT-OVER on the target: downtime ends when it answers ----
Status Source::restore() {
  progress_->phase(v1::PHASE_RESTORE, 0);
  PhaseClock ph(*journal_, v1::PHASE_RESTORE);
  v1::RestoreRequest rr;
  rr.set_migration_id(rep_.id());
  rr.set_lazy(pc_ != nullptr);
  *rr.mutable_net() = std::move(net_);
  rr.set_deadline_ms(restoreDeadlineMs());
  rr.set_netns_prepared(netnsInode_ != 0);
  rr.set_dev_shm_prepared(devShmPrepared_);
  rr.set_dev_prepared(devPrepared_);
  // The target answers once the container runs and syncs at COMMIT: what
  // waited here goes on at once (a checkpoint's file has no COMMIT).
  rr.set_durable_at_commit(req_.target() != kCheckpointPeer);
  stage_ = Stage::kRestoreSent;  // the supervisor leaves: the source waits for the answer now
  auto r = target_->restore(rr);
  if (!r.ok()) {
    ph.end(r.status());
    return operatorCancel_ ? cancelledByOperator() : r.status();
  }
  ph.end(okStatus(), 0,
         kv("prelayout_ms", r->prelayout_ms()) + " " +
             kv("prelayout_bytes", static_cast<int64_t>(r->prelayout_bytes())) + " " +
             kv("prelayout_wait_ms", r->prelayout_wait_ms()) + " " + kv("assemble_ms", r->assemble_ms()) + " " +
             kv("assemble_copied", static_cast<int64_t>(r->assembled_copied_bytes())) + " " +
             kv("assemble_moved", static_cast<int64_t>(r->assembled_moved_bytes())) + " " +
             kv("lazy_start_ms", r->lazy_start_ms()) + " " + kv("net_import_ms", r->net_import_ms()) + " " +
             kv("conntrack_imported", r->conntrack_imported()) + " " + kv("restore_ms", r->restore_ms()) + " " +
             kv("cutover_ms", r->cutover_ms()) + " " +
             kv("held_shmem_objects", static_cast<int64_t>(r->held_shmem_objects())));
  // A target of an older agent made the writable area durable after the
  // container resumed there, before answering: not downtime.
  rep_.set_downtime_ms((monotonicNs() - tFreeze_) / 1000000 - r->durable_ms());
  durableAtCommit_ = r->durable_at_commit();
  recordTargetSteps(*r);
  // Packets that reached this node since the freeze waited (hold_queue):
  // they go on to the target now, as do packets of clients that missed its
  // gratuitous ARP, for a while.
  // (A checkpoint's target is a file: the copy here goes or thaws at the
  // commit, and what waited is dropped or delivered to it then.)
  if (req_.target() == kCheckpointPeer) return okStatus();
  if (auto held = ctx_.host.forward(spec_, req_.target()); !held.ok())
    journal_->event("warn", "packets held during the frozen window: " + held.status().message());
  else if ((heldPackets_ = *held) > 0)
    journal_->event("info",
                    std::to_string(*held) + " packet(s) held during the frozen window went on to " + req_.target());
  return okStatus();
}

// A dump that takes longer than this is stuck (CRIU waiting on a task, a
// hung filesystem): its CRIU is killed and the migration aborts, the
// container thaws. Scaled like the restore's, by the memory to dump.
container::CallLimits Source::dumpLimits() {
  const auto scaled = static_cast<int64_t>(ctx_.host.memoryBytes(spec_.name) / kRestoreBytesPerSecond) * 1000;
  return {.timeoutMs = std::min(kRestoreBaseTimeoutMs + scaled, kMaxRestoreTimeoutMs), .cancel = &operatorCancel_};
}

// How long the target's restore may take: the operator's bound, or one
// that grows with what the images hold (CRIU restores well above 32 MiB/s).
int64_t Source::restoreDeadlineMs() const {
  if (req_.restore_timeout_ms() > 0)
    return std::clamp(req_.restore_timeout_ms(), kMinRestoreTimeoutMs, kMaxRestoreTimeoutMs);
  const auto scaled = static_cast<int64_t>(rep_.bytes() / kRestoreBytesPerSecond) * 1000;
  return std::min(kRestoreBaseTimeoutMs + scaled, kMaxRestoreTimeoutMs);
}

// The target's steps as rows of their own, so the frozen window's
// composition is a query away (durations measured by the target).
void Source::recordTargetSteps(const v1::RestoreReply& r) {
  int64_t at = rep_.phases(rep_.phases_size() - 1).started_ms();
  auto step = [&](v1::Phase phase, int64_t ms, uint64_t bytes, const std::string& detail) {
    journal_->addPhase(phase, at, ms, bytes, detail);
    at += ms;
  };
  step(v1::PHASE_TARGET_NET_IMPORT, r.net_import_ms(), 0,
       "nftables chain + " + std::to_string(r.conntrack_imported()) + " conntrack entries");
  if (pc_) {
    // Frozen time only the wait is; the layout itself ran during the dump.
    step(v1::PHASE_TARGET_PRELAYOUT_WAIT, r.prelayout_wait_ms(), r.prelayout_bytes(),
         r.prelayout_ms() || r.prelayout_bytes()
             ? "page store laid out during the dump in " + std::to_string(r.prelayout_ms()) + " ms (" +
                   std::to_string(r.prelayout_bytes()) + " bytes moved or copied)"
             : "no prelayout");
    step(v1::PHASE_TARGET_ASSEMBLE, r.assemble_ms(), r.assembled_copied_bytes() + r.assembled_moved_bytes(),
         "bytes = copied " + std::to_string(r.assembled_copied_bytes()) + " + moved " +
             std::to_string(r.assembled_moved_bytes()));
    step(v1::PHASE_TARGET_LAZY_START, r.lazy_start_ms(), 0,
         r.restored_lazily() ? "criu lazy-pages daemon"
                             : "none: " + std::to_string(r.restored_pages()) + " pages read by the restore itself");
  }
  step(v1::PHASE_TARGET_RESTORE, r.restore_ms(), r.restored_pages() * tracking::kPageSize,
       r.restored_lazily() ? "liblxc + criu restore --lazy-pages" : "liblxc + criu restore");
  step(v1::PHASE_TARGET_NETWORK, r.cutover_ms(), 0, "route + gratuitous ARP");
  // Made durable at COMMIT instead: commit() records it.
  if (!r.durable_at_commit())
    step(v1::PHASE_TARGET_DURABLE, r.durable_ms(), 0, "syncfs of the writable area (the container runs)");
}

// ---- COMMIT: the target runs it; the source copy goes ----
void Source::commit() {
  progress_->phase(v1::PHASE_COMMIT, 0);
  PhaseClock ph(*journal_, v1::PHASE_COMMIT);
  if (ctx_.keepRunning) {
    // A checkpoint that leaves the container running: it resumes as after
    // an abort; nothing of it went anywhere.
    Status st = ctx_.host.thaw(spec_.name);
    if (Status r = ctx_.host.reconnect(spec_); !r.ok() && st.ok()) st = r;
    (void)removeTree(imagesDir_);
    reservation_.release();
    if (!st.ok()) journal_->event("error", "resuming after the checkpoint: " + st.message());
    ph.end(st);
    return;
  }
  std::string detail = kv("held_packets", static_cast<int64_t>(heldPackets_));
  if (durableAtCommit_) {
    // The target's answer says its copy of the writable area is on disk:
    // until then this frozen copy stays, and is settled once the target
    // answers again (FrozenCopies).
    const int64_t t0 = monotonicNs(), at = wallMs();
    Status cst = target_->commit(rep_.id());
    const int64_t commitMs = (monotonicNs() - t0) / 1000000;
    journal_->addPhase(v1::PHASE_TARGET_DURABLE, at, commitMs, 0,
                       "COMMIT: syncfs of the writable area (the container runs, clients reach it)");
    detail += " " + kv("target_commit_ms", commitMs);
    if (!cst.ok()) {
      (void)removeTree(imagesDir_);
      reservation_.release();
      journal_->event("error", "the target did not confirm its copy on disk (" + cst.message() +
                                   "): the frozen copy here stays until it does");
      if (ctx_.settleLater) ctx_.settleLater();
      ph.end(cst.withContext("commit on " + req_.target()), 0, detail);
      return;
    }
  }
  Status st = ctx_.host.destroy(spec_.name);
  ctx_.host.forgetNet(spec_);  // its rules and entries live on the target now
  if (switchedOn("LXMIG_KEEP_LOGS")) keepLogs(imagesDir_, ctx_.host.logsRoot() + "/" + rep_.id());
  (void)removeTree(imagesDir_);
  reservation_.release();
  if (!durableAtCommit_) {
    // A target of an older agent synced before answering the restore: this
    // is a notice, the copy there runs either way.
    if (Status cst = target_->commit(rep_.id()); !cst.ok())
      journal_->event("warn", "commit notice to target failed: " + cst.message());
  }
  if (!st.ok()) journal_->event("error", "source cleanup: " + st.message());
  ph.end(st, 0, detail);
}

void Source::dropImagesStream() {
  setLive(nullptr);
  if (!images_) return;
  images_->cancel();
  (void)images_->finish();
  images_.reset();
}

// ---- ABORT: one way back from every stage ----
v1::MigrationReport Source::abort(const Status& why) {
  dropImagesStream();
  if (stage_ < Stage::kPrepared) {
    // Refused: nothing of the container was touched. A target that got the
    // PREPARE may have reserved things before refusing: it is told.
    if (stage_ == Stage::kPrepareSent) (void)target_->abort(rep_.id(), why.message(), 3);
    reservation_.release();
    return finish(v1::RESULT_REFUSED, why);
  }
  PhaseClock ph(*journal_, v1::PHASE_ABORT);
  prelayoutSent_ = {};  // joined: the target is about to drop what it works on
  const bool restoreSent = stage_ == Stage::kRestoreSent;
  Status targetAbort;
  for (int attempt = 0; attempt < (restoreSent ? kAbortAttemptsAfterRestore : 1); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    targetAbort = target_->abort(rep_.id(), why.message(), 5);
    if (targetAbort.ok()) break;
  }
  if (restoreSent && !targetAbort.ok()) {
    // The target may run the container: thawing here could make two copies.
    ph.end(targetAbort);
    reservation_.release();
    if (ctx_.settleLater) ctx_.settleLater();  // settled once the target answers again
    return finish(
        v1::RESULT_FAILED,
        Status(Code::kAborted, why.message() + "; target " + req_.target() + " did not confirm the abort, source `" +
                                   spec_.name + "` left FROZEN on " + ctx_.host.nodeName() +
                                   " to avoid two running copies; the agent settles it with " + req_.target() +
                                   " once it answers"));
  }
  Status local;
  if (pc_) pc_->disarm();  // no write-protection is left in the processes
  if (stage_ >= Stage::kFrozen) {
    local = ctx_.host.thaw(spec_.name);
    if (Status st = ctx_.host.reconnect(spec_); !st.ok() && local.ok()) local = st;
  }
  keepLogs(imagesDir_, ctx_.host.logsRoot() + "/" + rep_.id());
  (void)removeTree(imagesDir_);
  reservation_.release();
  ph.end(local);
  return finish(v1::RESULT_ABORTED, why);
}

}  // namespace lxmig::migration
