// The source side of a migration (DESIGN.md, "A migration"): one object
// per migration, one method per phase, one abort.
//
//   validate -> await-memory -> prepare (target) -> sync -> precopy ->
//   freeze -> final-scan -> dump -> rewrite -> net-export -> transfer ->
//   restore (target) -> commit
//
// validate refuses before anything is touched; await-memory waits for the
// memory of the migration that brought the container here; precopy and
// final-scan/rewrite only run in pre-copy mode. Downtime starts at freeze
// and ends when the target's restore answers.
//
// Invariant: at every instant exactly one copy runs. abort() is the one
// way out of every phase: before the restore was sent it thaws the source
// (after removing every tracker from its processes) and tells the target
// to discard what it has; after it, the source stays frozen unless the
// target confirms the abort, and the node settles it later (settle.h).
//
//   Source src(ctx, request, progress, cancelled);
//   v1::MigrationReport report = src.run();   // committed, aborted, refused or failed
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/migration/host.h"
#include "lxmig/migration/peers.h"
#include "lxmig/migration/progress.h"
#include "lxmig/node/reservations.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/transport/tree_transfer.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::tracking {
struct TrackerBackend;
}

namespace lxmig::migration {

class Journal;
class Progressor;
class PreCopy;
struct FinalStats;

using CancelledFn = std::function<bool()>;

// What a source migration works with; all of it outlives the Source.
struct SourceContext {
  ContainerHost& host;
  Peers& peers;
  store::AuditLog& audit;
  node::Reservations& reservations;
  // Called when a container is left frozen because the target did not
  // confirm an abort: the node settles it in the background.
  std::function<void()> settleLater;
  // How long the frozen window may go without the target taking a byte
  // (while CRIU dumps here, the target is not waited for). Past it, before
  // the restore was sent, the migration aborts and the source thaws.
  int64_t stallLimitMs = 60000;
  // Pre-copy: this node's CRIU leaves out of its dump the pages the target
  // holds (criu/held_pages.h); otherwise it drains them all and the
  // rewrite reads the delta from the frozen processes.
  bool criuHeldPages = false;
  // A checkpoint with --leave-running (checkpoint.h): at the commit the
  // container thaws here instead of going.
  bool keepRunning = false;
};

class Source {
 public:
  Source(SourceContext ctx, v1::MigrateRequest req, ProgressFn progress, CancelledFn cancelled);
  ~Source();
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // Runs the migration to its end and returns the report (also in the
  // audit). Call once.
  v1::MigrationReport run();
  const std::string& id() const { return rep_.id(); }
  // The operator's cancel (lxmig cancel), from any thread while run() runs:
  // the migration rolls back and the source resumes. Once the restore was
  // sent, the target is asked to stop it; FailedPrecondition when the
  // container already runs there (the migration then commits).
  Status cancel();

 private:
  // How far the migration got: what abort() has to undo.
  enum class Stage { kNothing, kReserved, kPrepareSent, kPrepared, kFrozen, kRestoreSent };

  Status validate();
  void chooseMode();
  Status placeDump();
  Status reserveFor(uint64_t footprint);
  // An event in the report and the audit.
  void note(const std::string& level, const std::string& text);
  Status awaitMemory();
  Status checkGroup();
  Status prepare();
  Status sync();
  Result<int> treePasses(transport::ChunkWriter& w, uint64_t* bytes);
  Status treePassesOnStream(uint64_t* bytes, int* passes, std::string* via = nullptr);
  Status precopy();
  Result<bool> memoryRound(const transport::BytesCallback& counted, const char* last = nullptr);
  // Whether the container's network namespace can stay out of CRIU's
  // images: it is still the layout the target prepared (net/netns.h).
  Status compareNetns();
  Status freeze();
  Status acceptWaiting();
  Status finalScan();
  // The network state of the frozen container and how long taking it took.
  struct NetTaken {
    Result<v1::NetState> net = v1::NetState();
    size_t entries = 0;
    int64_t ms = 0;
  };
  Status dump();
  // The files of the frozen container's /dev/shm, whole, into the tmpfs the
  // target prepared (transfer area DEV_SHM; beside the dump).
  Status sendDevShm(const transport::ChunkSink& sink, const transport::BytesCallback& counted);
  Status rewrite();
  Status exportNet();
  NetTaken takeNet();
  Status transfer();
  Status restore();
  int64_t restoreDeadlineMs() const;
  container::CallLimits dumpLimits();
  void commit();
  // Rolls back whatever the migration did so far (see above) and finishes
  // the report. Legal in every stage.
  v1::MigrationReport abort(const Status& why);
  v1::MigrationReport finish(v1::MigrationResult result, const Status& st);

  bool cancelled() const { return operatorCancel_ || (cancelled_ && cancelled_()); }
  // A bulk stream to the target: its data link while it works, the
  // Transfer RPC otherwise (with a warning saying why).
  std::unique_ptr<transport::ChunkWriter> openStream();
  // Sends the tree under `root` on `w` (what differs from `previous`).
  Result<transport::Manifest> sendTree(transport::ChunkWriter& w, v1::TransferChunk::Area area, const std::string& root,
                                       const transport::Manifest& previous, uint64_t* bytes,
                                       const std::map<std::string, uint64_t>* resume = nullptr,
                                       const std::vector<std::string>& first = {});
  // Breaks the images stream opened before the freeze, if open.
  void dropImagesStream();
  // Until the restore is sent, a supervisor thread breaks the stream in use
  // (a blocked write or wait for a verdict would not see them otherwise)
  // when the operator cancels, and in the frozen window when the target
  // takes nothing for ctx_.stallLimitMs (the frozen container must not wait
  // for a stalled peer).
  void supervise();
  void stopSupervisor();
  // The stream the supervisor may break (null: none); see LiveStream.
  void setLive(transport::ChunkWriter* w);
  class LiveStream;
  class LocalWork;
  void progressed() { progressNs_ = monotonicNs(); }
  Status stallError() const;
  void recordTargetSteps(const v1::RestoreReply& r);

  SourceContext ctx_;
  const v1::MigrateRequest req_;
  CancelledFn cancelled_;
  v1::MigrationReport rep_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Progressor> progress_;
  const int64_t t0_;

  std::atomic<Stage> stage_{Stage::kNothing};
  std::atomic<bool> operatorCancel_{false};
  node::Spec spec_;
  node::Reservation reservation_;
  const tracking::TrackerBackend* backend_ = nullptr;  // null: stop-and-copy
  std::unique_ptr<Peer> target_;
  uint16_t dataPort_ = 0;
  // The network namespace the target prepared (its shape; "" none), and
  // what compareNetns() found: glance_ is checked again while frozen.
  std::string targetNetnsShape_, netnsGlance_;
  uint64_t netnsInode_ = 0;        // != 0: dump without the namespace
  bool devShmPrepared_ = false;    // the target mounted a /dev/shm: dump without it if still empty
  bool devShmTakesFiles_ = false;  // ... and writes the files of ours into it (or only if empty)
  bool devPrepared_ = false;       // the target built a /dev: dump without it if still the same
  std::string devBootId_;          // the boot id in the /dev sent at PREPARE
  bool useLink_ = true;
  std::string imagesDir_;
  uint64_t reservedBytes_ = 0;    // memory the target made room for (PREPARE, then Reserve)
  transport::Manifest manifest_;  // the writable area as SYNC sent it
  bool treeSent_ = false;         // its last pass went during the dump
  std::unique_ptr<PreCopy> pc_;   // its destructor disarms the trackers
  std::unique_ptr<FinalStats> final_;
  std::unique_ptr<transport::ChunkWriter> images_;  // the stream of the frozen window
  std::unique_ptr<transport::TailSender> tail_;
  std::future<void> prelayoutSent_;
  // The network state, taken while CRIU dumps (dump(), exportNet()).
  std::future<NetTaken> netTaken_;
  v1::NetState net_;
  bool durableAtCommit_ = false;  // the target syncs at COMMIT: this copy goes only once it answered
  uint64_t sent_ = 0;             // bytes of the images stream
  size_t heldPackets_ = 0;        // packets that waited on this node during the frozen window
  uint64_t imageBytes_ = 0;
  Status streamError_;  // the images stream broke during the dump
  int64_t tFreeze_ = 0;

  std::mutex streamMu_;
  transport::ChunkWriter* live_ = nullptr;  // the stream in use, for the supervisor
  std::atomic<int64_t> progressNs_{0};
  std::atomic<bool> localWork_{false};  // CRIU dumps: the target is not waited for
  std::atomic<bool> stalled_{false};
  std::mutex superviseMu_;
  std::condition_variable superviseCv_;
  bool superviseStop_ = false;
  std::thread supervisor_;
};

// A fresh migration id: 16 hex digits.
std::string newMigrationId();

}  // namespace lxmig::migration
