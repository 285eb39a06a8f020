// The migration engine. Phases (DESIGN.md, "A migration"):
//   PREPARE (target checks) -> SYNC (writable area while running) ->
//   PRECOPY (memory rounds, precopy.h; skipped by stop-and-copy) ->
//   FREEZE -> FINAL-SCAN -> DUMP (CRIU via liblxc) -> REWRITE (only pages
//   the target lacks) -> TRANSFER (images + file delta) -> RESTORE (target:
//   assembly from its page store, lazy CRIU restore) + CUT-OVER (address)
//   -> COMMIT | ABORT.
// Invariant: at every instant exactly one copy runs. Until the target
// reports the container running, any failure thaws the source (after
// removing every tracker from its processes); abort is legal in every
// phase and idempotent.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "lxmig/transport/data_link.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/v1/agent.grpc.pb.h"
#include "lxmig/node/node.h"
#include "lxmig/criu/page_store.h"

namespace lxmig::migration {

using ProgressFn = std::function<void(const v1::Progress&)>;
using CancelledFn = std::function<bool()>;

// Source side: runs the whole migration and returns its report (result
// "committed", "aborted", "refused" or "failed" with a one-line error).
// Containers of this node left FROZEN by a migration that did not end here
// (the agent died in the frozen window, or the target did not confirm an
// abort). Each is settled with the migration's target when possible: the
// target accepts COMMIT -> its copy runs, the frozen one here goes; the
// target has not restored it -> ABORT there, thaw here; the target has no
// trace of it -> a peer that runs it owns it, otherwise thaw. A peer that is
// unreachable or still migrating it in leaves it frozen for the next call:
// at no point may two copies run. Returns how many are left frozen.
int resolveFrozen(node::Node& node);

v1::MigrationReport runMigration(node::Node& node, const v1::MigrateRequest& req, const ProgressFn& progress,
                                 const CancelledFn& cancelled);

// Target side: state of incoming migrations.
class Incoming {
 public:
  explicit Incoming(node::Node& node) : node_(node) {}
  // Removes leftovers of migrations a previous agent did not finish.
  void cleanupStale();
  Status prepare(const v1::PrepareRequest& req);
  // One bulk stream (Transfer RPC or data link) into the migration its
  // first chunk names; a stream of pre-copy rounds is folded into the page
  // store when it ends cleanly.
  Result<v1::TransferReply> receive(const transport::ChunkSource& next, bool checksums);
  // Lays the page store out as the source predicts the dump, in the
  // background; restore() waits for it.
  Status prelayout(const v1::PrelayoutRequest& req);
  Result<v1::RestoreReply> restore(const std::string& id, bool lazy, const v1::NetState& net);
  Status commit(const std::string& id);
  Status abort(const std::string& id, const std::string& reason);
  // Incoming migrations whose source is silent for idleMs: aborted when not
  // restored yet (the source is gone; it would have aborted us itself),
  // committed when restored (the copy here runs; the source's is frozen).
  void reapIdle(int64_t idleMs);

 private:
  struct State {
    node::Spec spec;
    std::string source;
    std::string stagingDir;  // <lxc_path>/.incoming-<id>
    std::string imagesDir;
    bool restored = false;
    // Network state imported here (removed again if the migration aborts).
    bool rulesImported = false;
    // Devices decided in PREPARE: container path -> this node's device.
    std::map<std::string, container::devices::Device> devices;
    net::ConntrackEntries conntrackImported;
    // CRIU's lazy-pages daemon of a lazy restore: the images stay until it
    // has filled every page.
    std::shared_ptr<Child> lazyPages;
    // The same daemon started early, while the images still arrive (see
    // receive()); restore() takes it over.
    std::unique_ptr<Child> lazyEarly;
    // Held by restore, commit and abort: a COMMIT or ABORT that arrives while
    // the restore runs waits for its outcome instead of racing it.
    std::mutex opMu;
    std::mutex pagesMu;
    std::unique_ptr<criu::PageStore> pages;  // pre-copy rounds received
    std::atomic<bool> roundsApplied{false};  // pre-copy: the restore will be lazy
    int64_t startedMs = 0;
    std::atomic<int64_t> lastActivityMs{0};
    // PRELAYOUT's outcome, set by its thread before it ends.
    Result<criu::PrelayoutStats> prelayoutStats = criu::PrelayoutStats{};
    int64_t prelayoutMs = 0;
    // Its thread (std::async: destroying the future joins it). Declared
    // last, so it is joined before any member it uses goes.
    std::future<void> prelayoutDone;
  };
  // Waits for a PRELAYOUT still laying out `s`'s store.
  static void awaitPrelayout(State& s);
  Result<std::shared_ptr<State>> find(const std::string& id);
  void discard(const std::string& id, State& s);
  // Removes the firewall chain and conntrack entries restore() imported.
  void dropImportedNet(State& s);

  node::Node& node_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<State>> active_;
};

std::string newMigrationId();

}  // namespace lxmig::migration
