#include "lxmig/migration/target.h"

#include <cstdlib>
#include <set>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/proto/vocabulary.h"
#include "lxmig/transport/tree_transfer.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "target";
constexpr const char* kStagingPrefix = ".incoming-";
// Room a migration may use on top of what its PREPARE announced.
constexpr uint64_t kBudgetSlackBytes = uint64_t{1} << 30;
// After this long a lazy-pages daemon still filling memory is reported.
constexpr int kFillReportMs = 600000;

// CRIU's logs of a failed migration outlive the images for the operator.
void keepLogs(const std::string& imagesDir, const std::string& dest) {
  for (const char* f : {"dump.log", "restore.log", "lxc.log", "lazy-pages.log"}) {
    auto text = readFile(imagesDir + "/" + f);
    if (!text.ok()) continue;
    if (makeDirs(dest, 0700).ok()) (void)writeFileAtomic(dest + "/" + f, *text, 0600);
  }
}

}  // namespace

Target::~Target() {
  stopping_ = true;
  for (auto& f : fills_) f.thread.join();
}

void Target::cleanupStale() {
  for (const std::string& root : {host_.stagingRoot(), host_.imagesRoot()}) {
    const bool staging = root == host_.stagingRoot();
    auto names = listDir(root);
    if (!names.ok()) continue;
    for (const auto& n : *names) {
      if (staging && !startsWith(n, kStagingPrefix)) continue;
      LXMIG_LOG(kInfo, kLog) << "removing leftover of an interrupted migration: " << root << "/" << n;
      (void)removeTree(root + "/" + n);
    }
  }
}

Result<std::shared_ptr<Target::State>> Target::find(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return notFound("no incoming migration `" + id + "` on " + host_.nodeName());
  return it->second;
}

void Target::finishAudit(const std::string& id, v1::MigrationResult result, const std::string& error,
                         const State& s) {
  Status st = audit_.finishMigration(id, std::string(name(result)), error, wallMs(), 0, -1, wallMs() - s.startedMs);
  if (!st.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << st.toString();
}

Status Target::prepare(const v1::PrepareRequest& req) {
  const std::string& self = host_.nodeName();
  const std::string& id = req.migration_id();
  LXMIG_RETURN_IF_ERROR(checkMigrationId(id));
  LXMIG_RETURN_IF_ERROR(checkNodeName(req.source()));
  node::Spec spec = node::Spec::fromProto(req.spec());
  LXMIG_RETURN_IF_ERROR(spec.check().withContext("container spec from " + req.source()));
  {
    std::lock_guard lk(mu_);
    if (active_.count(id)) return alreadyExists("migration " + id + " is already prepared on " + self);
  }
  if (host_.defined(spec.name))
    return alreadyExists("target " + self + " already holds a container named `" + spec.name + "`");
  for (const auto& n : host_.containers()) {
    auto s = host_.spec(n);
    if (s.ok() && s->ip == spec.ip)
      return failedPrecondition("target " + self + ": address " + spec.ip + " is used by `" + n + "`");
  }
  for (const auto& b : spec.binds)
    if (!host_.hostPathExists(b.hostPath))
      return failedPrecondition("target " + self + " lacks bind source `" + b.hostPath + "`");
  // Devices: every need met by the same device or a declared mapping; one
  // line per device that is not.
  container::devices::Placement fit;
  if (req.devices_needed_size() > 0) {
    std::vector<container::devices::Device> need, sourceOffer;
    for (const auto& d : req.devices_needed()) need.push_back(container::devices::fromProto(d));
    for (const auto& d : req.source_offer()) sourceOffer.push_back(container::devices::fromProto(d));
    LXMIG_ASSIGN_OR_RETURN(auto offer, host_.deviceOffer());
    fit = container::devices::place(need, sourceOffer, offer, self, spec.name);
    if (!fit.missing.empty()) {
      std::string lines;
      for (const auto& m : fit.missing) lines += (lines.empty() ? "" : "\n") + m;
      return failedPrecondition(lines);
    }
  }
  // Images hold about the container's memory; refuse now rather than after
  // the freeze when it cannot fit.
  const uint64_t imgFree = host_.freeBytes(host_.imagesRoot());
  if (req.memory_bytes() > 0 && imgFree < req.memory_bytes())
    return resourceExhausted("target " + self + " has " + humanBytes(imgFree) + " free for images in " +
                             host_.imagesRoot() + ", the container needs about " + humanBytes(req.memory_bytes()));
  const uint64_t fsFree = host_.freeBytes(host_.stagingRoot());
  if (fsFree < req.expected_bytes())
    return resourceExhausted("target " + self + " has " + humanBytes(fsFree) + " free in " + host_.stagingRoot() +
                             ", the writable area needs " + humanBytes(req.expected_bytes()));
  auto st = std::make_shared<State>();
  LXMIG_ASSIGN_OR_RETURN(st->reservation, reservations_.reserve(spec.name, "migrating in from " + req.source()));
  st->spec = spec;
  st->devices = fit.target;
  // The container's device binds point at this node's devices from now on.
  for (auto& d : st->spec.devices)
    if (auto m = fit.hostPath.find(d.containerPath); m != fit.hostPath.end()) d.hostPath = m->second;
  st->source = req.source();
  st->stagingDir = host_.stagingRoot() + "/" + kStagingPrefix + id;
  st->imagesDir = host_.imagesRoot() + "/" + id;
  st->startedMs = wallMs();
  st->lastActivityMs = st->startedMs;
  // What the source may send at most: pre-copy rounds stop after 3x the
  // memory, the images hold about the memory once more, the writable area
  // goes twice (before the freeze and its delta) and may grow meanwhile.
  st->budget = std::make_unique<transport::ByteBudget>(4 * req.memory_bytes() + 2 * req.expected_bytes() +
                                                       kBudgetSlackBytes);
  Status mk = makeDirs(st->stagingDir + "/rootfs", 0700);
  if (mk.ok()) mk = makeDirs(st->imagesDir, 0700);
  if (!mk.ok()) {
    discard(id, *st);
    return mk.withContext("target " + self);
  }
  store::MigrationRecord rec;
  rec.id = id;
  rec.container = spec.name;
  rec.source = req.source();
  rec.target = self;
  rec.mode = std::string(name(v1::MODE_INCOMING));
  rec.startedMs = st->startedMs;
  rec.result = std::string(name(v1::RESULT_RUNNING));
  rec.reason = "incoming from " + req.source();
  if (Status a = audit_.beginMigration(rec); !a.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << a.toString();
  std::lock_guard lk(mu_);
  active_[id] = st;
  LXMIG_LOG(kInfo, kLog) << "prepared incoming migration " << id << " of " << spec.name << " from " << req.source();
  return okStatus();
}

Result<v1::TransferReply> Target::receive(const transport::ChunkSource& next, bool checksums) {
  v1::TransferChunk c;
  std::shared_ptr<State> st;
  std::unique_ptr<transport::TreeWriter> images, rootfs;
  const std::string& self = host_.nodeName();
  bool rounds = false;               // a stream of pre-copy rounds (not the images after the dump)
  std::set<std::string> lazyInputs;  // what CRIU's lazy-pages daemon reads at start-up, seen
  bool lazyTried = false;
  for (;;) {
    auto more = next(c);
    if (!more.ok()) return more.status().withContext("target " + self);
    if (!*more) break;
    if (!st) {
      LXMIG_ASSIGN_OR_RETURN(st, find(c.migration_id()));
      images = std::make_unique<transport::TreeWriter>(st->imagesDir, checksums, st->budget.get());
      rootfs = std::make_unique<transport::TreeWriter>(st->stagingDir + "/rootfs", checksums, st->budget.get());
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
    transport::TreeWriter& w = isImages ? *images : *rootfs;
    if (auto s = w.apply(c); !s.ok()) return s.withContext("target " + self);
    if (startLazy) {  // the next file's header closed the second of them
      std::lock_guard op(st->opMu);
      if (st->roundsApplied && !st->restored && !st->lazyEarly) {
        auto d = host_.spawnLazyPages(st->imagesDir);
        if (d.ok()) st->lazyEarly = std::make_unique<Child>(std::move(*d));
        else LXMIG_LOG(kInfo, kLog) << "early lazy-pages start: " << d.status().toString();
      }
    }
  }
  v1::TransferReply r;
  if (!st) return r;
  LXMIG_RETURN_IF_ERROR(images->finish().withContext("target " + self));
  LXMIG_RETURN_IF_ERROR(rootfs->finish().withContext("target " + self));
  if (rounds) {
    std::lock_guard lk(st->pagesMu);
    if (!st->pages) st->pages = std::make_unique<criu::PageStore>(st->imagesDir);
    LXMIG_RETURN_IF_ERROR(st->pages->applyRounds().withContext("target " + self + ": page store"));
    st->roundsApplied = true;
  }
  r.set_bytes(images->bytes() + rootfs->bytes());
  r.set_files(images->files() + rootfs->files());
  return r;
}

Status Target::prelayout(const v1::PrelayoutRequest& req) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(req.migration_id()));
  std::map<uint32_t, tracking::PageSet> predicted;
  for (const auto& p : req.procs()) {
    if (p.ranges_size() % 2) return invalidArgument("prelayout of pid " + std::to_string(p.vpid()) + ": odd range list");
    tracking::PageSet& set = predicted[p.vpid()];
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

void Target::awaitPrelayout(State& s) {
  if (s.prelayoutDone.valid()) s.prelayoutDone.wait();
}

Result<v1::RestoreReply> Target::restore(const std::string& id, bool lazy, const v1::NetState& net) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(id));
  std::lock_guard op(st->opMu);
  const std::string& name = st->spec.name;
  st->lastActivityMs = wallMs();
  auto fail = [&](const Status& s) {
    (void)host_.destroy(name);
    (void)host_.releaseAddress(st->spec);
    host_.dropImportedNet(st->spec, &st->net);
    return s.withContext("restore on " + host_.nodeName());
  };
  // A device decided in PREPARE must still be there.
  for (const auto& [path, dev] : st->devices) {
    auto now = host_.statDevice(dev.path);
    if (!now.ok() || now->id() != dev.id())
      return fail(failedPrecondition("device " + dev.path + " (" + dev.id() + ", for " + path + ") vanished from " +
                                     host_.nodeName() + " since PREPARE"));
  }
  if (auto s = host_.adopt(st->spec, st->stagingDir + "/rootfs"); !s.ok()) return fail(s);
  v1::RestoreReply r;
  int64_t t = monotonicNs();
  auto lap = [&t] {
    const int64_t now = monotonicNs();
    return (now - std::exchange(t, now)) / 1000000;
  };
  // The container's firewall chain and conntrack entries are in place
  // before it resumes: its first packet after restore must pass.
  if (auto s = host_.importNet(st->spec, net, &st->net); !s.ok()) return fail(s);
  r.set_conntrack_imported(st->net.conntrackCount);
  r.set_net_import_ms(lap());
  awaitPrelayout(*st);
  if (st->prelayoutDone.valid()) {
    r.set_prelayout_wait_ms(lap());
    r.set_prelayout_ms(st->prelayoutMs);
    if (st->prelayoutStats.ok())
      r.set_prelayout_bytes(st->prelayoutStats->movedBytes + st->prelayoutStats->copiedBytes);
  }
  {
    std::lock_guard lk(st->pagesMu);
    if (st->pages) {
      auto as = st->pages->assemble();
      if (!as.ok()) return fail(as.status().withContext("assemble images"));
      r.set_assemble_ms(lap());
      r.set_assembled_copied_bytes(as->copiedBytes);
      r.set_assembled_moved_bytes(as->movedBytes);
    }
  }
  if (lazy) {
    Result<Child> d = st->lazyEarly ? Result<Child>(std::move(*st->lazyEarly)) : host_.spawnLazyPages(st->imagesDir);
    st->lazyEarly.reset();
    if (d.ok())
      if (auto s = host_.awaitLazyPages(st->imagesDir, *d); !s.ok()) d = s;
    if (!d.ok()) return fail(d.status());
    st->lazyPages = std::make_shared<Child>(std::move(*d));
    if (auto s = host_.beginMemoryFill(name, id, st->lazyPages->pid(), st->imagesDir); !s.ok()) {
      st->lazyPages.reset();
      return fail(s.withContext("record the memory fill of `" + name + "`"));
    }
    r.set_lazy_start_ms(lap());
  }
  st->lazyEarly.reset();  // not lazy after all
  if (auto s = host_.restore(name, st->imagesDir, lazy); !s.ok()) {
    st->lazyPages.reset();
    host_.endMemoryFill(name);
    return fail(s);
  }
  st->restored = true;
  st->lastActivityMs = wallMs();
  if (auto s = host_.thaw(name); !s.ok()) return fail(s);
  r.set_restore_ms(lap());
  if (auto s = host_.claimAddress(st->spec); !s.ok()) return fail(s);
  r.set_cutover_ms(lap());
  r.set_init_pid(host_.initPid(name));
  LXMIG_LOG(kInfo, kLog) << "restored " << name << " (migration " << id << ") in " << r.restore_ms() << " ms";
  return r;
}

void Target::reapIdle(int64_t idleMs) {
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
    (void)audit_.addEvent(id, "warn", "source silent after the restore: committed by the target");
    if (auto st = commit(id); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  }
}

void Target::discard(const std::string& id, State& s) {
  awaitPrelayout(s);  // it works on the images about to go
  s.lazyEarly.reset();
  if (s.lazyPages) {
    s.lazyPages.reset();  // a daemon still running serves a container being destroyed
    host_.endMemoryFill(s.spec.name);
  }
  if (!s.restored) {
    const std::string logs = host_.logsRoot() + "/" + id;
    keepLogs(s.imagesDir, logs);
    // For a post-mortem of a failed restore: LXMIG_KEEP_FAILED_IMAGES=1 in
    // the agent's environment keeps the whole image set with the logs.
    if (const char* keep = std::getenv("LXMIG_KEEP_FAILED_IMAGES"); keep && std::string(keep) == "1")
      if (makeDirs(logs, 0700).ok()) (void)runCommand({"cp", "-a", s.imagesDir, logs + "/images"});
  }
  (void)removeTree(s.stagingDir);
  (void)removeTree(s.imagesDir);
  s.reservation.release();
  std::lock_guard lk(mu_);
  active_.erase(id);
}

Status Target::commit(const std::string& id) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(id));
  std::lock_guard op(st->opMu);
  LXMIG_RETURN_IF_ERROR(find(id).status());  // aborted meanwhile
  if (!st->restored) return failedPrecondition("migration " + id + " was not restored on " + host_.nodeName());
  finishAudit(id, v1::RESULT_COMMITTED, "", *st);
  if (!st->lazyPages || !st->lazyPages->running()) {
    discard(id, *st);
    return okStatus();
  }
  // The container runs and is an ordinary container of this node now; its
  // memory is still being filled from the local images, which go once the
  // daemon is done.
  st->reservation.release();
  {
    std::lock_guard lk(mu_);
    active_.erase(id);
    for (auto it = fills_.begin(); it != fills_.end();) {
      if (!*it->done) {
        ++it;
        continue;
      }
      it->thread.join();
      it = fills_.erase(it);
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    fills_.push_back({std::thread([this, id, st, done] {
                        awaitFill(id, st);
                        *done = true;
                      }),
                      done});
  }
  return okStatus();
}

void Target::awaitFill(std::string id, std::shared_ptr<State> s) {
  // Never killed: a container whose daemon dies reads zeros where its
  // memory has not arrived yet. A daemon that takes long is reported.
  const int64_t start = monotonicNs();
  bool reported = false;
  Result<int> rc = deadlineExceeded("");
  while (!rc.ok() && rc.status().code() == Code::kDeadlineExceeded) {
    if (stopping_) {
      // The agent stops; the daemon goes on, and the marker lets the next
      // agent know it (node::Node::memoryFill).
      s->lazyPages->release();
      return;
    }
    rc = s->lazyPages->wait(200);
    if (!reported && (monotonicNs() - start) / 1000000 > kFillReportMs) {
      reported = true;
      LXMIG_LOG(kWarn, kLog) << "lazy-pages daemon of migration " << id << " still fills `" << s->spec.name
                             << "` after 10 minutes";
      (void)audit_.addEvent(id, "warn", "lazy-pages daemon still running after 10 minutes");
    }
  }
  if (!rc.ok() || *rc != 0) {
    const std::string why = rc.ok() ? "exit code " + std::to_string(*rc) : rc.status().message();
    LXMIG_LOG(kError, kLog) << "lazy-pages daemon of migration " << id << " failed (" << why << "): container `"
                            << s->spec.name << "` may miss memory; log kept in " << host_.logsRoot() << "/" << id;
    (void)audit_.addEvent(id, "error", "lazy-pages daemon failed: " + why);
    keepLogs(s->imagesDir, host_.logsRoot() + "/" + id);
  } else {
    (void)audit_.addEvent(id, "info", "lazy-pages daemon filled all memory");
  }
  s->lazyPages.reset();
  host_.endMemoryFill(s->spec.name);
  (void)removeTree(s->stagingDir);
  (void)removeTree(s->imagesDir);
}

Status Target::abort(const std::string& id, const std::string& reason) {
  auto r = find(id);
  if (!r.ok()) return okStatus();  // nothing here: already aborted or never prepared
  auto st = *r;
  std::lock_guard op(st->opMu);
  if (!find(id).ok()) return okStatus();  // committed or aborted meanwhile
  const std::string& name = st->spec.name;
  // Only a container this migration created is destroyed.
  if (st->restored || (host_.defined(name) && !pathExists(st->stagingDir + "/rootfs"))) {
    (void)host_.destroy(name);
    (void)host_.releaseAddress(st->spec);
  }
  host_.dropImportedNet(st->spec, &st->net);
  discard(id, *st);
  finishAudit(id, v1::RESULT_ABORTED, reason, *st);
  LXMIG_LOG(kInfo, kLog) << "aborted incoming migration " << id << ": " << reason;
  return okStatus();
}

}  // namespace lxmig::migration
