// The target side of migrations: what a node does for the migrations that
// bring containers to it (DESIGN.md, "A migration"). The source drives; the
// target answers PREPARE, receives bulk streams (the writable area,
// pre-copy rounds folded into a page store, the images after the dump),
// lays its page store out as the source predicts the dump (PRELAYOUT),
// RESTOREs (network state first, then the container, then its address),
// and COMMITs or ABORTs. Restore, commit and abort of one migration are
// serialized, so a COMMIT that arrives during the restore waits for its
// outcome; an ABORT stops the restore first (CRIU is killed). A restore
// has a deadline (the source's, bounded here) after which it is killed and
// fails, so no call waits on a hung CRIU for long.
//
// A migration belongs to the node that prepared it: every later call names
// the calling node (`peer`, from its certificate), and a node that is not
// the migration's source gets PermissionDenied.
//
//   Target target(host, audit, reservations, {.maxIncoming = 4});
//   target.cleanupStale();                   // at agent start
//   target.prepare("n1", req); target.receive("n1", next, checksums); ...
//   target.restore("n1", id, lazy, net); target.commit("n1", id);
//   target.reapIdle(silenceMs);              // now and then
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lxmig/criu/page_store.h"
#include "lxmig/migration/host.h"
#include "lxmig/node/reservations.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/transport/data_link.h"
#include "lxmig/transport/tree_transfer.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// What a restore's images leave out, taken from what PREPARE made: the
// network namespace (the tasks join the one laid out), /dev/shm and /dev
// (the tmpfs mounted are bound there); and whether the writable area is
// made durable at COMMIT rather than before the restore answers.
struct RestoreOptions {
  bool netns = false, devShm = false, dev = false;
  bool durableAtCommit = false;
};

class Target {
 public:
  struct Options {
    int maxIncoming = 4;  // migrations prepared at once; more are refused
    // The host ids this node maps containers with a user namespace of
    // their own onto (agent config `idmap`); size 0: none.
    uint32_t idmapBase = 0, idmapSize = 0;
    // CRIU restores a container with a user namespace of its own lazily
    // (node::criuLazyInUserns); otherwise eagerly.
    bool lazyInUserns = false;
    // Shared memory is kept whole in memfds the restore takes as the
    // objects (criu::PageStore's mirrors; node::criuTakesHeldShmem).
    bool heldShmem = false;
    // CRIU reads where each pagemap entry's pages are: the page store is
    // handed over as it is (criu::PageStore::withPagemapOffsets;
    // node::criuReadsPagemapOffsets).
    bool pagemapOffsets = false;
  };
  // All three outlive the Target.
  Target(ContainerHost& host, store::AuditLog& audit, node::Reservations& reservations, Options options)
      : host_(host), audit_(audit), reservations_(reservations), options_(options) {}
  // Stops watching the lazy-pages daemons of committed migrations (they go
  // on filling memory; a restarted agent finds them again, node.h's
  // MemoryFill) and joins its threads.
  ~Target();

  // Removes leftovers of migrations a previous agent did not finish.
  void cleanupStale();
  // `peer` becomes the migration's source (req.source, when set, must
  // name it too). Images go to the tmpfs, or to the disk directory when the
  // tmpfs cannot hold them (then said in reply->images_staging); neither:
  // refused with the sizes.
  Status prepare(const std::string& peer, const v1::PrepareRequest& req, v1::PrepareReply* reply = nullptr);
  // One bulk stream (Transfer RPC or data link) into the migration its
  // first chunk names; a stream of pre-copy rounds is folded into the page
  // store when it ends cleanly.
  Result<v1::TransferReply> receive(const std::string& peer, const transport::ChunkSource& next, bool checksums);
  // Room for a container that grew past what PREPARE reserved: its images'
  // place must hold the growth (ResourceExhausted with the sizes, and the
  // migration stays prepared: the source aborts); the byte budget grows
  // with it.
  Status reserve(const std::string& peer, const v1::ReserveRequest& req);
  // Lays the page store out as the source predicts the dump, in the
  // background; restore() waits for it.
  Status prelayout(const std::string& peer, const v1::PrelayoutRequest& req);
  // deadlineMs: CRIU's restore is killed after it (0: kDefaultRestoreMs).
  Result<v1::RestoreReply> restore(const std::string& peer, const std::string& id, bool lazy, const v1::NetState& net,
                                   int64_t deadlineMs = 0, RestoreOptions prepared = {});
  static constexpr int64_t kDefaultRestoreMs = 120 * 1000;
  // OK once committed (again too), the writable area on disk when the
  // restore left that to the commit. FailedPrecondition when prepared but
  // not restored, or aborted; NotFound when this node has no trace of it.
  // After an agent restart the audit answers: a migration restored here
  // before the restart is committed now.
  Status commit(const std::string& peer, const std::string& id);
  // OK once aborted (again too) or never prepared; a restore under way is
  // killed first (Unavailable if it does not end within seconds: ask
  // again). FailedPrecondition for a
  // migration committed here, or restored here before an agent restart: its
  // container runs here, only COMMIT settles it.
  // unlessRestored: FailedPrecondition when the container was restored here
  // (the operator's cancel that came too late).
  Status abort(const std::string& peer, const std::string& id, const std::string& reason, bool unlessRestored = false);
  // Incoming migrations whose source is silent for idleMs: aborted when not
  // restored yet (the source is gone; it would have aborted us itself),
  // committed when restored (the copy here runs; the source's is frozen).
  void reapIdle(int64_t idleMs);

 private:
  // A namespace laid out as the source's `layout` for `spec` (checked: its
  // MAC and addresses must be the spec's, which PREPARE checked).
  Result<std::unique_ptr<net::PreparedNetns>> prepareNetns(const std::string& id, const node::Spec& spec,
                                                           const v1::NetnsLayout& layout);
  struct State {
    node::Spec spec;
    std::string source;
    std::string stagingDir;    // <staging>/.incoming-<id>
    std::string imagesDir;     // <images>/<id>, or <images-disk>/<id> when the tmpfs was short
    uint64_t memoryBytes = 0;  // what PREPARE (and later Reserve) made room for
    node::Reservation reservation;
    std::unique_ptr<transport::ByteBudget> budget;  // bytes the source may still send
    bool restored = false;
    bool durablePending = false;  // restored; its writable area is synced at COMMIT
    // The source runs on this very kernel (a test bed): FIFOs in binds are
    // the objects the source still holds, with their bytes.
    bool sameKernel = false;
    // Network state imported here (removed again if the migration aborts).
    ImportedNet net;
    // Devices decided in PREPARE: container path -> this node's device.
    std::map<std::string, container::devices::Device> devices;
    // CRIU's lazy-pages daemon of a lazy restore: the images stay until it
    // has filled every page.
    std::shared_ptr<Child> lazyPages;
    // The same daemon started early, while the images still arrive (see
    // receive()); restore() takes it over.
    std::unique_ptr<Child> lazyEarly;
    // The network namespace laid out at PREPARE (net/netns.h), if asked
    // and made: removed with the migration unless a restore joined it.
    std::unique_ptr<net::PreparedNetns> netns;
    // The tmpfs mounted at PREPARE for its /dev/shm (container/dev_shm.h)
    // and its /dev (dev_tree.h), if asked and made: detached with the
    // migration (a restored container keeps its own bind of them).
    std::unique_ptr<container::PreparedTmpfs> devShm, dev;
    // Held by restore, commit and abort.
    std::timed_mutex opMu;
    // Set by an abort: a restore under way is killed, one to come fails.
    std::atomic<bool> cancelRestore{false};
    std::mutex pagesMu;
    std::unique_ptr<criu::PageStore> pages;  // pre-copy rounds received
    UniqueFd heldCgroup;                     // cgroup.procs its shared memory mirrors are charged to
    std::atomic<bool> roundsApplied{false};  // pre-copy: the restore will be lazy
    // What the store held after the last round (bytes): read without
    // pagesMu, which a PRELAYOUT holds for as long as it moves pages (the
    // receive loop must not wait for it).
    std::atomic<uint64_t> heldBytes{0};
    int64_t startedMs = 0;
    std::atomic<int64_t> lastActivityNs{0};  // monotonic
    // PRELAYOUT's outcome, set by its thread before it ends.
    Result<criu::PrelayoutStats> prelayoutStats = criu::PrelayoutStats{};
    int64_t prelayoutMs = 0;
    // Its thread (std::async: destroying the future joins it). Declared
    // last, so it is joined before any member it uses goes.
    std::future<void> prelayoutDone;
  };
  // Waits for a PRELAYOUT still laying out `s`'s store.
  static void awaitPrelayout(State& s);
  // Whether CRIU can restore `s` lazily here at all.
  bool lazyPossible(const State& s) const;
  // The page store of the rounds, keeping shared memory in mirrors charged
  // to the container's held memory cgroup when it can.
  std::unique_ptr<criu::PageStore> newPageStore(State& s);
  // Whether the images will be worth CRIU's lazy-pages daemon, judged from
  // the pages the rounds brought (the final delta adds few).
  bool worthLazy(State& s) const;
  Result<std::shared_ptr<State>> find(const std::string& id);
  // find() for `peer`, which must be the migration's source.
  Result<std::shared_ptr<State>> findFor(const std::string& peer, const std::string& id);
  Status commitLocked(const std::string& id, const std::shared_ptr<State>& st);
  Status abortLocked(const std::string& id, State& st, const std::string& reason);
  // What the audit says of a migration this node no longer holds.
  enum class Past { kUnknown, kCommitted, kAborted, kRestored, kInterrupted };
  Past pastOf(const std::string& id, std::string* container);
  // Drops staging, images and the reservation; forgets the migration.
  void discard(const std::string& id, State& s);
  // After a commit with the lazy-pages daemon still filling memory: waits
  // for it, records how it ended, then drops the images.
  void awaitFill(std::string id, std::shared_ptr<State> s);
  void finishAudit(const std::string& id, v1::MigrationResult result, const std::string& error, const State& s);

  ContainerHost& host_;
  store::AuditLog& audit_;
  node::Reservations& reservations_;
  Options options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<State>> active_;
  // awaitFill threads; finished ones are joined when the next starts, the
  // rest by the destructor.
  struct Fill {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Fill> fills_;
  std::atomic<bool> stopping_{false};
};

}  // namespace lxmig::migration
