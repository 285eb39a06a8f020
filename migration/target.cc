#include "lxmig/migration/target.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "images_place.h"
#include "journal.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/container/dev_shm.h"
#include "lxmig/criu/image.h"
#include "lxmig/proto/vocabulary.h"
#include "lxmig/transport/tree_transfer.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "target";
constexpr const char* kStagingPrefix = ".incoming-";
// The audit event that says a container was restored and runs here (read
// back after an agent restart, pastOf()).
constexpr const char* kRestoredEvent = "restored and running on the target";
// Room a migration may use on top of what its PREPARE announced.
constexpr uint64_t kBudgetSlackBytes = uint64_t{1} << 30;
// How long an abort waits for a killed restore to give its lock back.
constexpr int kAbortWaitMs = 4000;
// After this long a lazy-pages daemon still filling memory is reported.
constexpr int kFillReportMs = 600000;
// Below this many bytes of pages a pre-copy restore reads the images
// directly instead of through CRIU's lazy-pages daemon. Measured here with
// CRIU's kerndat cache (docs/benchmarks.md, 2026-12-05, small containers):
// the daemon's start overlaps the transfer but slows it, ~10-15 ms of
// frozen time in all; the restore reads a MiB of pages in ~3.5 ms. 4 MiB
// went faster read directly, 12 MiB through the daemon.
constexpr uint64_t kLazyRestoreMinBytes = uint64_t{8} << 20;

}  // namespace

Target::~Target() {
  stopping_ = true;
  for (auto& f : fills_) f.thread.join();
}

void Target::cleanupStale() {
  // Incoming migrations an agent restart cut off before their restore
  // ended: the container defined for them goes (with a restore that may
  // still hang in it); the source still has the workload.
  store::MigrationFilter running{.result = std::string(name(v1::RESULT_RUNNING)), .limit = 10000};
  for (const auto& m : audit_.listMigrations(running).value_or({})) {
    std::string container;
    if (pastOf(m.id, &container) != Past::kInterrupted) continue;
    if (!host_.defined(container)) {
      // Cut off before the container was defined: only the memory cgroup
      // its shared memory was charged to may be left (nothing in it now).
      if (!container.empty()) host_.removeHeldMemoryCgroup(container);
      continue;
    }
    LXMIG_LOG(kWarn, kLog) << "migration " << m.id << " was not restored before the agent restarted: removing `"
                           << container << "` here";
    host_.killRestore(container);
    auto spec = host_.spec(container);
    (void)host_.destroy(container);
    if (spec.ok()) {
      (void)host_.releaseAddress(*spec);
      ImportedNet chain;  // the firewall chain imported for it, if any
      chain.rules = true;
      host_.dropImportedNet(*spec, &chain);
    }
    (void)audit_.addEvent(m.id, "warn", "restore cut off by an agent restart: container removed on the target");
  }
  for (const std::string& root : {host_.stagingRoot(), host_.imagesRoot(), host_.imagesDiskRoot()}) {
    if (root.empty()) continue;
    const bool staging = root == host_.stagingRoot();
    auto names = listDir(root);
    if (!names.ok()) continue;
    for (const auto& n : *names) {
      if (staging && !startsWith(n, kStagingPrefix)) continue;
      LXMIG_LOG(kInfo, kLog) << "removing leftover of an interrupted migration: " << root << "/" << n;
      // A prepared tmpfs: removeTree stops at the mount.
      for (std::string_view suffix : {container::kDevShmSuffix, container::kDevSuffix})
        if (n.size() > suffix.size() && n.ends_with(suffix)) container::removePreparedTmpfs(root + "/" + n);
      (void)removeTree(root + "/" + n);
    }
  }
}

Result<std::shared_ptr<Target::State>> Target::find(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return notFound("no incoming migration `" + id.substr(0, 64) + "` on " + host_.nodeName());
  return it->second;
}

Result<std::shared_ptr<Target::State>> Target::findFor(const std::string& peer, const std::string& id) {
  LXMIG_ASSIGN_OR_RETURN(auto st, find(id));
  if (st->source != peer)
    return Status(Code::kPermissionDenied,
                  "migration " + id + " on " + host_.nodeName() + " is " + st->source + "'s, not " + peer + "'s");
  return st;
}

Target::Past Target::pastOf(const std::string& id, std::string* container) {
  if (!checkMigrationId(id).ok()) return Past::kUnknown;
  auto m = audit_.getMigration(id);
  if (!m.ok() || m->id != id || m->mode != name(v1::MODE_INCOMING)) return Past::kUnknown;
  *container = m->container;
  if (m->result == name(v1::RESULT_COMMITTED)) return Past::kCommitted;
  if (m->result == name(v1::RESULT_ABORTED)) return Past::kAborted;
  // Interrupted by an agent restart (or still "running" in a database the
  // agent did not get to mark): did the restore complete before it?
  auto events = audit_.events(id);
  if (events.ok())
    for (const auto& e : *events)
      if (e.text == kRestoredEvent) return Past::kRestored;
  return Past::kInterrupted;
}

void Target::finishAudit(const std::string& id, v1::MigrationResult result, const std::string& error, const State& s) {
  Status st = audit_.finishMigration(id, std::string(name(result)), error, wallMs(), 0, -1, wallMs() - s.startedMs);
  if (!st.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << st.toString();
}

Status Target::prepare(const std::string& peer, const v1::PrepareRequest& req, v1::PrepareReply* reply) {
  const std::string& self = host_.nodeName();
  const std::string& id = req.migration_id();
  LXMIG_RETURN_IF_ERROR(checkMigrationId(id));
  LXMIG_RETURN_IF_ERROR(checkNodeName(peer));
  if (!req.source().empty() && req.source() != peer)
    return Status(Code::kPermissionDenied, peer + " cannot prepare a migration from " + req.source().substr(0, 64));
  node::Spec spec = node::Spec::fromProto(req.spec());
  LXMIG_RETURN_IF_ERROR(spec.check().withContext("container spec from " + peer));
  {
    std::lock_guard lk(mu_);
    if (active_.count(id)) return alreadyExists("migration " + id + " is already prepared on " + self);
    if (static_cast<int>(active_.size()) >= options_.maxIncoming)
      return resourceExhausted("target " + self + " already receives " + std::to_string(active_.size()) +
                               " migrations (max_incoming)");
  }
  std::string seen;
  if (pastOf(id, &seen) != Past::kUnknown) return alreadyExists("migration " + id + " already ran on " + self);
  if (host_.defined(spec.name))
    return alreadyExists("target " + self + " already holds a container named `" + spec.name + "`");
  for (const auto& n : host_.containers()) {
    auto s = host_.spec(n);
    if (!s.ok()) continue;
    for (const auto& a : spec.addresses()) {
      auto theirs = s->addresses();
      if (std::find(theirs.begin(), theirs.end(), a) != theirs.end())
        return failedPrecondition("target " + self + ": address " + a + " is used by `" + n + "`");
    }
  }
  // A user namespace of its own: its ids must map here as on the source
  // (its writable area and its processes' credentials keep them).
  if (spec.idmapSize > 0 &&
      (options_.idmapSize == 0 || spec.idmapBase < options_.idmapBase ||
       uint64_t{spec.idmapBase} + spec.idmapSize > uint64_t{options_.idmapBase} + options_.idmapSize))
    return failedPrecondition(
        "target " + self + " cannot map the ids of `" + spec.name + "` (host ids " + std::to_string(spec.idmapBase) +
        ".." + std::to_string(uint64_t{spec.idmapBase} + spec.idmapSize - 1) + "): its agent config `idmap` is " +
        (options_.idmapSize == 0 ? std::string("off")
                                 : std::to_string(options_.idmapBase) + ":" + std::to_string(options_.idmapSize)));
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
  const uint64_t fsFree = host_.freeBytes(host_.stagingRoot());
  if (fsFree < req.expected_bytes())
    return resourceExhausted("target " + self + " has " + humanBytes(fsFree) + " free in " + host_.stagingRoot() +
                             ", the writable area needs " + humanBytes(req.expected_bytes()));
  // Images hold about the container's memory: refused now rather than
  // after the freeze when neither the tmpfs nor the disk can hold them.
  LXMIG_ASSIGN_OR_RETURN(ImagesPlace place,
                         placeImages(host_, "target " + self, req.memory_bytes(), req.expected_bytes()));
  auto st = std::make_shared<State>();
  LXMIG_ASSIGN_OR_RETURN(st->reservation, reservations_.reserve(spec.name, "migrating in from " + peer,
                                                                node::ReservationKind::kMigratingIn));
  st->spec = spec;
  st->devices = fit.target;
  // The container's device binds point at this node's devices from now on.
  for (auto& d : st->spec.devices)
    if (auto m = fit.hostPath.find(d.containerPath); m != fit.hostPath.end()) d.hostPath = m->second;
  st->source = peer;
  st->sameKernel = !req.source_boot_id().empty() && req.source_boot_id() == bootId();
  st->stagingDir = host_.stagingRoot() + "/" + kStagingPrefix + id;
  st->imagesDir = place.root + "/" + id;
  st->memoryBytes = req.memory_bytes();
  st->startedMs = wallMs();
  st->lastActivityNs = monotonicNs();
  // What the source may send at most: pre-copy rounds stop after 3x the
  // memory, the images hold about the memory once more, the writable area
  // goes twice (before the freeze and its delta) and may grow meanwhile.
  st->budget =
      std::make_unique<transport::ByteBudget>(4 * req.memory_bytes() + 2 * req.expected_bytes() + kBudgetSlackBytes);
  Status mk = makeDirs(st->stagingDir + "/rootfs", 0700);
  if (mk.ok()) mk = makeDirs(st->imagesDir, 0700);
  if (!mk.ok()) {
    discard(id, *st);
    return mk.withContext("target " + self);
  }
  store::MigrationRecord rec;
  rec.id = id;
  rec.container = spec.name;
  rec.source = peer;
  rec.target = self;
  rec.mode = std::string(name(v1::MODE_INCOMING));
  rec.startedMs = st->startedMs;
  rec.result = std::string(name(v1::RESULT_RUNNING));
  rec.reason = "incoming from " + peer;
  if (Status a = audit_.beginMigration(rec); !a.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << a.toString();
  if (!place.why.empty()) {
    LXMIG_LOG(kInfo, kLog) << id << ": " << place.why;
    if (Status a = audit_.addEvent(id, "info", place.why); !a.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << a.toString();
    if (reply) reply->set_images_staging(place.why);
  }
  if (req.has_netns()) {
    // Laid out now, out of the frozen window; a layout that cannot be made
    // here only means the images carry the namespace (the source learns it
    // from the empty shape).
    auto ns = prepareNetns(id, st->spec, req.netns());
    if (ns.ok()) {
      st->netns = std::move(*ns);
      if (reply) reply->set_netns_shape(st->netns->shape());
    } else {
      LXMIG_LOG(kWarn, kLog) << id << ": no network namespace prepared for " << spec.name << ": "
                             << ns.status().toString();
      if (reply) reply->set_netns_not_prepared("target " + self + ": " + ns.status().message());
    }
  }
  if (req.dev_shm_standard()) {
    // An empty tmpfs for its /dev/shm, beside the images (the id is hex),
    // which the container's files (DEV_SHM) fill in the frozen window;
    // without it the images carry /dev/shm.
    auto shm = host_.prepareDevShm(st->imagesDir + std::string(container::kDevShmSuffix));
    if (shm.ok()) {
      st->devShm = std::move(*shm);
      if (reply) {
        reply->set_dev_shm_prepared(true);
        reply->set_dev_shm_takes_files(true);
      }
    } else {
      LXMIG_LOG(kWarn, kLog) << id << ": no /dev/shm prepared for " << spec.name << ": " << shm.status().toString();
    }
  }
  if (!req.dev_boot_id().empty()) {
    // liblxc's /dev tree with the container's boot id (checked there);
    // without it the images carry /dev.
    auto dev = host_.prepareDev(st->imagesDir + std::string(container::kDevSuffix), req.dev_boot_id());
    if (dev.ok()) {
      st->dev = std::move(*dev);
      if (reply) reply->set_dev_prepared(true);
    } else {
      LXMIG_LOG(kWarn, kLog) << id << ": no /dev prepared for " << spec.name << ": " << dev.status().toString();
    }
  }
  std::lock_guard lk(mu_);
  active_[id] = st;
  LXMIG_LOG(kInfo, kLog) << "prepared incoming migration " << id << " of " << spec.name << " from " << peer;
  return okStatus();
}

Result<std::unique_ptr<net::PreparedNetns>> Target::prepareNetns(const std::string& id, const node::Spec& spec,
                                                                 const v1::NetnsLayout& p) {
  net::NetnsLayout l;
  l.hwaddr = p.hwaddr();
  l.mtu = static_cast<int>(std::min<uint32_t>(p.mtu(), 1 << 20));
  l.gateway = p.gateway();
  // The host end: "lxm" and the migration id's start (an id is hex).
  l.hostVeth = "lxm" + id.substr(0, 12);
  if (l.hwaddr != spec.hwaddr) return invalidArgument("the layout's MAC is not the container's");
  const auto own = spec.addresses();
  if (p.addresses_size() > 64) return invalidArgument("more than 64 addresses in the layout");
  for (const auto& a : p.addresses()) {
    // Only the addresses PREPARE checked are put on the bridge later.
    if (std::find(own.begin(), own.end(), a.ip()) == own.end())
      return invalidArgument("address `" + a.ip().substr(0, 32) + "` is not one of the container's");
    l.addresses.push_back({a.ip(), static_cast<int>(std::min<uint32_t>(a.prefix_len(), 64)), a.broadcast()});
  }
  LXMIG_RETURN_IF_ERROR(net::checkLayout(l));
  return host_.prepareNetns(l);
}

Result<v1::TransferReply> Target::receive(const std::string& peer, const transport::ChunkSource& next, bool checksums) {
  v1::TransferChunk c;
  std::shared_ptr<State> st;
  std::string id;
  std::unique_ptr<transport::TreeWriter> images, rootfs, devShm;
  const std::string& self = host_.nodeName();
  bool rounds = false;  // a stream of pre-copy rounds (not the images after the dump)
  criu::LazyStartGate lazyGate;
  for (;;) {
    auto more = next(c);
    if (!more.ok()) return more.status().withContext("target " + self);
    if (!*more) break;
    if (!st) {
      id = c.migration_id();
      LXMIG_ASSIGN_OR_RETURN(st, findFor(peer, id));
      images = std::make_unique<transport::TreeWriter>(st->imagesDir, checksums, st->budget.get());
      rootfs = std::make_unique<transport::TreeWriter>(st->stagingDir + "/rootfs", checksums, st->budget.get(),
                                                       /*writeback=*/true);
    }
    if (c.migration_id() != id)
      return invalidArgument("one stream, one migration: chunk of " + c.migration_id().substr(0, 64));
    st->lastActivityNs = monotonicNs();
    if (!v1::TransferChunk::Area_IsValid(c.area()))
      return invalidArgument("target " + self + ": chunk of an unknown area " + std::to_string(c.area()));
    const bool isImages = c.area() == v1::TransferChunk::IMAGES;
    rounds |= isImages && startsWith(c.path(), "rounds");
    // Pre-copy's images after the dump (the source sends what CRIU's
    // lazy-pages daemon reads at start-up first): once those are whole, the
    // daemon can start, and its start-up runs while the rest arrives.
    const bool startLazy = isImages && !rounds && c.has_meta() && lazyGate.next(c.path());
    if (c.area() == v1::TransferChunk::DEV_SHM && !devShm) {
      // Into the tmpfs prepared at PREPARE, never anywhere else.
      std::lock_guard op(st->opMu);
      if (!st->devShm || st->restored)
        return failedPrecondition("target " + self +
                                  ": files for /dev/shm, but no /dev/shm was prepared for migration " + id);
      devShm = std::make_unique<transport::TreeWriter>(st->devShm->path(), checksums, st->budget.get());
    }
    transport::TreeWriter& w = isImages ? *images : c.area() == v1::TransferChunk::DEV_SHM ? *devShm : *rootfs;
    if (auto s = w.apply(c); !s.ok()) return s.withContext("target " + self);
    if (startLazy) {  // the next file's header closed the last of them
      std::lock_guard op(st->opMu);
      if (st->roundsApplied && !st->restored && !st->lazyEarly && worthLazy(*st)) {
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
  if (devShm) LXMIG_RETURN_IF_ERROR(devShm->finish().withContext("target " + self + ": /dev/shm"));
  if (rounds) {
    std::lock_guard lk(st->pagesMu);
    if (!st->pages) st->pages = newPageStore(*st);
    LXMIG_RETURN_IF_ERROR(st->pages->applyRounds().withContext("target " + self + ": page store"));
    st->heldBytes = st->pages->heldPages() * tracking::kPageSize;
    st->roundsApplied = true;
  }
  r.set_bytes(images->bytes() + rootfs->bytes() + (devShm ? devShm->bytes() : 0));
  r.set_files(images->files() + rootfs->files() + (devShm ? devShm->files() : 0));
  return r;
}

Status Target::reserve(const std::string& peer, const v1::ReserveRequest& req) {
  LXMIG_ASSIGN_OR_RETURN(auto st, findFor(peer, req.migration_id()));
  std::lock_guard op(st->opMu);
  if (st->restored) return failedPrecondition("migration " + req.migration_id() + " is already restored");
  const uint64_t want = req.memory_bytes();
  if (want <= st->memoryBytes) return okStatus();
  const uint64_t more = want - st->memoryBytes;
  const std::string root = st->imagesDir.substr(0, st->imagesDir.rfind('/'));
  const uint64_t free = host_.freeBytes(root);
  if (free < more)
    return resourceExhausted("target " + host_.nodeName() + " has " + humanBytes(free) + " free for images in " + root +
                             ", the container grew to about " + humanBytes(want) + " (" + humanBytes(st->memoryBytes) +
                             " reserved)");
  // As at PREPARE: rounds up to 3x the memory, the images once more.
  st->budget->grow(4 * more);
  const std::string what = "the container grew to about " + humanBytes(want) + ": room reserved in " + root + " (was " +
                           humanBytes(st->memoryBytes) + ")";
  st->memoryBytes = want;
  LXMIG_LOG(kInfo, kLog) << req.migration_id() << ": " << what;
  if (Status a = audit_.addEvent(req.migration_id(), "info", what); !a.ok())
    LXMIG_LOG(kWarn, kLog) << "audit: " << a.toString();
  return okStatus();
}

Status Target::prelayout(const std::string& peer, const v1::PrelayoutRequest& req) {
  LXMIG_ASSIGN_OR_RETURN(auto st, findFor(peer, req.migration_id()));
  // The layout walks every predicted page: bounded by what the migration
  // may send at all, and every range must be a range of addresses.
  std::map<uint32_t, tracking::PageSet> predicted;
  uint64_t total = 0;
  for (const auto& p : req.procs()) {
    const std::string pid = "prelayout of pid " + std::to_string(p.vpid());
    if (p.ranges_size() % 2) return invalidArgument(pid + ": odd range list");
    tracking::PageSet& set = predicted[p.vpid()];
    for (int i = 0; i < p.ranges_size(); i += 2) {
      const uint64_t a = p.ranges(i), b = p.ranges(i + 1);
      if (a >= b || a % tracking::kPageSize || b % tracking::kPageSize || b > criu::kAddressSpaceEnd)
        return invalidArgument(pid + ": bad range");
      total += b - a;
      if (total > st->budget->total()) return resourceExhausted(pid + ": more pages than the migration announced");
      set.add(a, b);
    }
  }
  std::lock_guard op(st->opMu);
  if (st->restored || st->prelayoutDone.valid())
    return failedPrecondition("migration " + req.migration_id() + ": prelayout comes once, before the restore");
  st->lastActivityNs = monotonicNs();
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

namespace {

// On a kernel the source shares (a test bed), a FIFO in a bind directory is
// the very object the source's frozen copy holds, its bytes still in it:
// CRIU would write them a second time (or fail with EAGAIN on a full one).
// Their entries leave fifo-data.img; FIFOs of the writable area are new
// objects here and keep theirs. Returns how many were dropped.
Result<size_t> dropSharedFifoData(const std::string& imagesDir, const node::Spec& spec) {
  const std::string dataPath = imagesDir + "/fifo-data.img";
  if (!pathExists(dataPath) || spec.binds.empty()) return size_t{0};
  LXMIG_ASSIGN_OR_RETURN(std::string files, readFile(imagesDir + "/files.img"));
  LXMIG_ASSIGN_OR_RETURN(auto paths, criu::fifoPaths(files));
  std::set<uint32_t> shared;
  for (const auto& [pipe, path] : paths)
    for (const auto& b : spec.binds) {
      const std::string& dir = b.containerPath;
      if (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && (dir == "/" || path[dir.size()] == '/'))
        shared.insert(pipe);
    }
  if (shared.empty()) return size_t{0};
  LXMIG_ASSIGN_OR_RETURN(std::string data, readFile(dataPath));
  size_t dropped = 0;
  LXMIG_ASSIGN_OR_RETURN(std::string kept, criu::dropFifoData(data, shared, &dropped));
  LXMIG_RETURN_IF_ERROR(writeFileAtomic(dataPath, kept, 0600));
  return dropped;
}

// The links CRIU makes when it rebuilds the container's network namespace
// (netdev-N.img, a peer's): lowered as in a prepared namespace
// (net::restoreMtu), raised once the restore is done.
Result<std::vector<net::LoweredMtu>> lowerNetdevMtus(const std::string& imagesDir) {
  constexpr size_t kMaxLinks = 64;
  std::vector<net::LoweredMtu> out;
  LXMIG_ASSIGN_OR_RETURN(auto names, listDir(imagesDir));
  for (const auto& f : names) {
    if (!criu::imageNumber("netdev-", f, UINT32_MAX)) continue;
    const std::string path = imagesDir + "/" + f;
    LXMIG_ASSIGN_OR_RETURN(std::string img, readFile(path));
    auto edited = criu::editNetdevMtus(img, [&](criu::LinkMtu& l) {
      if ((l.type != criu::kNdLoopback && l.type != criu::kNdVeth) || out.size() >= kMaxLinks) return;
      auto m = net::lowerForRestore(l.name, l.mtu, l.ipv6Mtu);
      if (!m) return;
      l.mtu = static_cast<uint32_t>(m->lowered);
      if (l.ipv6Mtu && *l.ipv6Mtu > m->lowered) l.ipv6Mtu = m->lowered;
      out.push_back(std::move(*m));
    });
    if (!edited.ok()) return edited.status().withContext(f);
    if (*edited != img) LXMIG_RETURN_IF_ERROR(writeFileAtomic(path, *edited, 0600));
  }
  return out;
}

}  // namespace

// A container with a user namespace of its own is restored eagerly unless
// CRIU makes its tasks' userfaultfds through /dev/userfaultfd: the kernel
// refuses userfaultfd(2) inside it without vm.unprivileged_userfaultfd.
std::unique_ptr<criu::PageStore> Target::newPageStore(State& s) {
  auto store = std::make_unique<criu::PageStore>(s.imagesDir);
  if (options_.pagemapOffsets) store->withPagemapOffsets();
  if (!options_.heldShmem) {
    store->withoutMirrors();
    return store;
  }
  // The mirrors' pages live on as the container's shared memory: charged
  // to its held memory cgroup (made with the first), never to this agent.
  // The store lives in `s`.
  store->chargeMirrorsWith([this, &s]() -> Result<int> {
    LXMIG_ASSIGN_OR_RETURN(UniqueFd fd, host_.heldMemoryCgroup(s.spec.name));
    s.heldCgroup = std::move(fd);
    return s.heldCgroup.get();
  });
  return store;
}

bool Target::lazyPossible(const State& s) const { return s.spec.idmapSize == 0 || options_.lazyInUserns; }

bool Target::worthLazy(State& s) const { return lazyPossible(s) && s.heldBytes.load() >= kLazyRestoreMinBytes; }

Result<v1::RestoreReply> Target::restore(const std::string& peer, const std::string& id, bool lazy,
                                         const v1::NetState& net, int64_t deadlineMs, RestoreOptions prepared) {
  LXMIG_ASSIGN_OR_RETURN(auto st, findFor(peer, id));
  std::lock_guard op(st->opMu);
  LXMIG_RETURN_IF_ERROR(find(id).status());  // aborted meanwhile
  const container::CallLimits limits{
      .timeoutMs =
          deadlineMs > 0 ? std::clamp(deadlineMs, kMinRestoreTimeoutMs, kMaxRestoreTimeoutMs) : kDefaultRestoreMs,
      .cancel = &st->cancelRestore};
  const std::string& name = st->spec.name;
  st->lastActivityNs = monotonicNs();
  auto fail = [&](const Status& s) {
    (void)audit_.addEvent(id, "error", "restore failed: " + s.message());
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
  if (auto s = host_.installStaged(st->spec, st->stagingDir + "/rootfs"); !s.ok()) return fail(s);
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
  std::vector<std::pair<uint64_t, std::string>> heldShmem;  // the page store's mirrors
  {
    std::lock_guard lk(st->pagesMu);
    if (st->pages) {
      auto as = st->pages->assemble();
      if (!as.ok()) return fail(as.status().withContext("assemble images"));
      r.set_assemble_ms(lap());
      r.set_assembled_copied_bytes(as->copiedBytes);
      r.set_assembled_moved_bytes(as->movedBytes);
      r.set_restored_pages(as->pages);
      for (auto [shmid, fd] : st->pages->mirrors()) {
        // Owned by the container's root when it has a user namespace:
        // CRIU gives the object its owner from inside it.
        if (st->spec.idmapSize > 0 && ::fchown(fd, st->spec.idmapBase, st->spec.idmapBase) != 0)
          return fail(Status::fromErrno("chown", "the memfd of shared memory " + std::to_string(shmid)));
        heldShmem.emplace_back(shmid, "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd));
      }
      r.set_held_shmem_objects(static_cast<uint32_t>(heldShmem.size()));
      if (as->joinedEntries)
        LXMIG_LOG(kInfo, kLog) << id << ": " << as->joinedEntries << " pagemap entries joined to their neighbours";
      // A few megabytes are read by CRIU's restore faster than its
      // lazy-pages daemon starts (the images are complete either way).
      if (as->pages * tracking::kPageSize < kLazyRestoreMinBytes) lazy = false;
    }
  }
  if (!lazyPossible(*st)) lazy = false;
  r.set_restored_lazily(lazy);
  if (st->sameKernel) {
    auto dropped = dropSharedFifoData(st->imagesDir, st->spec);
    if (!dropped.ok()) return fail(dropped.status());
    if (*dropped) LXMIG_LOG(kInfo, kLog) << id << ": " << *dropped << " FIFO(s) in binds keep their bytes (one kernel)";
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
  if (st->cancelRestore) return fail(Status(Code::kCancelled, "restore of `" + name + "` cancelled by an abort"));
  container::KeptOut out;  // of the images: prepared here
  out.heldShmem = std::move(heldShmem);
  if (prepared.netns) {
    if (!st->netns) return fail(failedPrecondition("no network namespace was prepared for `" + name + "`"));
    out.path = st->netns->path();
    out.hostVeth = st->netns->hostVeth();
  }
  if (prepared.devShm) {
    if (!st->devShm) return fail(failedPrecondition("no /dev/shm was prepared for `" + name + "`"));
    out.devShmPath = st->devShm->path();
  }
  if (prepared.dev) {
    if (!st->dev) return fail(failedPrecondition("no /dev was prepared for `" + name + "`"));
    out.devPath = st->dev->path();
  }
  std::vector<net::LoweredMtu> lowered;  // of a namespace CRIU rebuilds
  if (!prepared.netns) {
    auto l = lowerNetdevMtus(st->imagesDir);
    if (!l.ok()) return fail(l.status().withContext("links of the images"));
    lowered = std::move(*l);
  }
  if (auto s = host_.restore(name, st->imagesDir, lazy, limits, out); !s.ok()) {
    st->lazyPages.reset();
    host_.endMemoryFill(name);
    // Killed at its deadline: an answer, not the silence of a peer that
    // DeadlineExceeded would mean to the source.
    return fail(s.code() == Code::kDeadlineExceeded ? Status(Code::kAborted, s.message()) : s);
  }
  st->restored = true;
  if (prepared.netns) {
    // Its sockets are all there now (still frozen): traffic may flow.
    if (auto s = st->netns->unlock(); !s.ok()) return fail(s);
    st->netns->handOver();  // the container's now
    st->netns.reset();
  }  // else one prepared and not used goes with the migration (an `ip` run: not in the frozen window)
  if (auto s = host_.raiseMtus(name, lowered); !s.ok()) return fail(s);
  st->lastActivityNs = monotonicNs();
  if (auto s = host_.requeueDatagrams(name, net); !s.ok()) return fail(s.withContext("UDP queues"));
  if (auto s = host_.applyCriuGaps(name, st->imagesDir); !s.ok()) return fail(s.withContext("state CRIU left out"));
  // Durable before it runs: an agent restarted from here on must never
  // agree to an abort (the source would thaw its copy too), pastOf().
  if (Status a = audit_.addEvent(id, "info", kRestoredEvent); !a.ok()) return fail(a.withContext("audit"));
  if (auto s = host_.thaw(name); !s.ok()) return fail(s);
  r.set_restore_ms(lap());
  if (auto s = host_.claimAddress(st->spec); !s.ok()) return fail(s);
  r.set_cutover_ms(lap());
  // The source destroys its copy when it learns the container runs here
  // (this answer, or COMMIT's when it asked for that): the writable area
  // must be on disk by then, not only in the page cache. The container
  // already runs.
  if (prepared.durableAtCommit) {
    st->durablePending = true;
    r.set_durable_at_commit(true);
  } else {
    if (auto s = syncFilesystem(host_.rootfs(name)); !s.ok()) return fail(s);
    r.set_durable_ms(lap());
  }
  r.set_init_pid(host_.initPid(name));
  LXMIG_LOG(kInfo, kLog) << "restored " << name << " (migration " << id << ") in " << r.restore_ms() << " ms";
  return r;
}

void Target::reapIdle(int64_t idleMs) {
  std::vector<std::pair<std::string, std::shared_ptr<State>>> silent;
  {
    std::lock_guard lk(mu_);
    const int64_t now = monotonicNs();
    for (const auto& [id, st] : active_)
      if ((now - st->lastActivityNs) / 1000000 > idleMs) silent.emplace_back(id, st);
  }
  for (auto& [id, st] : silent) {
    // A restore, commit or abort in progress is the source at work, not
    // silence; and whether the container was restored is decided under the
    // same lock, so a restore that just succeeded is never aborted.
    std::unique_lock op(st->opMu, std::try_to_lock);
    if (!op.owns_lock() || !find(id).ok()) continue;
    if (!st->restored) {
      (void)abortLocked(id, *st, "source silent for " + std::to_string(idleMs / 1000) + " s");
      continue;
    }
    // Restored and running here, and the source never said COMMIT (it died,
    // or its notice got lost): the copy here is the one that runs, so it is
    // this node's container now. A source that comes back finds it running
    // here and removes its frozen copy.
    LXMIG_LOG(kWarn, kLog) << "migration " << id << ": restored here, source silent for " << idleMs / 1000
                           << " s: committing";
    (void)audit_.addEvent(id, "warn", "source silent after the restore: committed by the target");
    if (auto s = commitLocked(id, st); !s.ok()) LXMIG_LOG(kWarn, kLog) << s.toString();
  }
}

void Target::discard(const std::string& id, State& s) {
  awaitPrelayout(s);  // it works on the images about to go
  s.lazyEarly.reset();
  if (s.lazyPages) {
    s.lazyPages.reset();  // a daemon still running serves a container being destroyed
    host_.endMemoryFill(s.spec.name);
  }
  const std::string logs = host_.logsRoot() + "/" + id;
  if (!s.restored || switchedOn("LXMIG_KEEP_LOGS")) keepLogs(s.imagesDir, logs);
  // For a post-mortem of a failed restore, the whole image set too.
  if (!s.restored && switchedOn("LXMIG_KEEP_FAILED_IMAGES") && makeDirs(logs, 0700).ok())
    (void)runCommand({"cp", "-a", s.imagesDir, logs + "/images"});
  if (!s.restored) {
    {
      std::lock_guard lk(s.pagesMu);
      s.pages.reset();  // its mirrors' memory goes
    }
    if (s.heldCgroup) {  // made for this migration
      s.heldCgroup.reset();
      host_.removeHeldMemoryCgroup(s.spec.name);
    }
  }
  (void)removeTree(s.stagingDir);
  (void)removeTree(s.imagesDir);
  s.netns.reset();
  s.devShm.reset();
  s.dev.reset();
  s.reservation.release();
  std::lock_guard lk(mu_);
  active_.erase(id);
}

Status Target::commit(const std::string& peer, const std::string& id) {
  auto found = findFor(peer, id);
  if (!found.ok() && found.status().code() == Code::kNotFound) {
    std::string container;
    switch (pastOf(id, &container)) {
      case Past::kCommitted:
        return okStatus();
      case Past::kRestored: {
        // Its writable area may not have been synced before the restart
        // (durable_at_commit): it is now, before the source's copy goes.
        if (!container.empty() && host_.defined(container))
          LXMIG_RETURN_IF_ERROR(syncFilesystem(host_.rootfs(container)).withContext("commit of migration " + id));
        Status a = audit_.finishMigration(id, std::string(name(v1::RESULT_COMMITTED)),
                                          "committed after an agent restart", wallMs(), 0, -1, -1);
        if (!a.ok()) return a;
        LXMIG_LOG(kInfo, kLog) << "migration " << id << " of " << container
                               << ": restored here before the agent restarted; committed";
        return okStatus();
      }
      case Past::kAborted:
        return failedPrecondition("migration " + id + " was aborted on " + host_.nodeName());
      case Past::kInterrupted:
        return failedPrecondition("migration " + id + " was not restored on " + host_.nodeName() +
                                  " before its agent restarted");
      case Past::kUnknown:
        break;
    }
  }
  LXMIG_ASSIGN_OR_RETURN(auto st, found);
  std::lock_guard op(st->opMu);
  LXMIG_RETURN_IF_ERROR(find(id).status());  // aborted meanwhile
  return commitLocked(id, st);
}

Status Target::commitLocked(const std::string& id, const std::shared_ptr<State>& st) {
  if (!st->restored) return failedPrecondition("migration " + id + " was not restored on " + host_.nodeName());
  if (st->durablePending) {
    // The source keeps its frozen copy until this answers.
    LXMIG_RETURN_IF_ERROR(syncFilesystem(host_.rootfs(st->spec.name)).withContext("commit of migration " + id));
    st->durablePending = false;
  }
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
  const bool failed = !rc.ok() || *rc != 0;
  if (failed) {
    const std::string why = rc.ok() ? "exit code " + std::to_string(*rc) : rc.status().message();
    LXMIG_LOG(kError, kLog) << "lazy-pages daemon of migration " << id << " failed (" << why << "): container `"
                            << s->spec.name << "` may miss memory; log kept in " << host_.logsRoot() << "/" << id;
    (void)audit_.addEvent(id, "error", "lazy-pages daemon failed: " + why);
  } else {
    (void)audit_.addEvent(id, "info", "lazy-pages daemon filled all memory");
  }
  if (failed || switchedOn("LXMIG_KEEP_LOGS")) keepLogs(s->imagesDir, host_.logsRoot() + "/" + id);
  s->lazyPages.reset();
  host_.endMemoryFill(s->spec.name);
  (void)removeTree(s->stagingDir);
  (void)removeTree(s->imagesDir);
}

Status Target::abort(const std::string& peer, const std::string& id, const std::string& reason, bool unlessRestored) {
  auto r = findFor(peer, id);
  if (!r.ok() && r.status().code() == Code::kNotFound) {
    std::string container;
    switch (pastOf(id, &container)) {
      case Past::kCommitted:
        return failedPrecondition("migration " + id + " was committed on " + host_.nodeName() + ": `" + container +
                                  "` runs there");
      case Past::kRestored:
        return failedPrecondition("migration " + id + " restored `" + container + "` on " + host_.nodeName() +
                                  " before its agent restarted: only a commit settles it");
      default:
        return okStatus();  // aborted, never restored, or never prepared here
    }
  }
  LXMIG_ASSIGN_OR_RETURN(auto st, r);
  // A restore under way is killed (it would hold the lock until its
  // deadline); the source that asks does not want it any more.
  st->cancelRestore = true;
  std::unique_lock op(st->opMu, std::defer_lock);
  if (!op.try_lock_for(std::chrono::milliseconds(kAbortWaitMs)))
    return unavailable("migration " + id + " on " + host_.nodeName() + ": its restore is still being stopped");
  if (!find(id).ok()) {  // settled meanwhile
    std::string container;
    return pastOf(id, &container) == Past::kCommitted ? failedPrecondition("migration " + id + " was committed")
                                                      : okStatus();
  }
  if (unlessRestored && st->restored)
    return failedPrecondition("migration " + id + ": `" + st->spec.name + "` already runs on " + host_.nodeName() +
                              ", too late to cancel");
  return abortLocked(id, *st, reason);
}

Status Target::abortLocked(const std::string& id, State& st, const std::string& reason) {
  const std::string& name = st.spec.name;
  // Only a container this migration created is destroyed.
  if (st.restored || (host_.defined(name) && !pathExists(st.stagingDir + "/rootfs"))) {
    (void)host_.destroy(name);
    (void)host_.releaseAddress(st.spec);
  }
  host_.dropImportedNet(st.spec, &st.net);
  discard(id, st);
  finishAudit(id, v1::RESULT_ABORTED, reason, st);
  LXMIG_LOG(kInfo, kLog) << "aborted incoming migration " << id << ": " << reason;
  return okStatus();
}

}  // namespace lxmig::migration
