// Source side of iterative pre-copy (DESIGN.md, "A migration", SYNC and
// FINAL). While the container runs, each round sends the pages written since
// the previous one, read with process_vm_readv and keyed by (pid inside the
// container, address), and the pages of shared memory objects (memfd,
// shared anonymous mappings) whose content changed, keyed by (shmid,
// offset) and sent once for all the processes that map them. Each round arrives on the target as CRIU-format
// files rounds/NNNN/{pagemap,pages}-<vpid>.img, which the target folds into
// its page store (page_store.h). After the freeze and the CRIU dump,
// rewriteDump() marks every page the target holds PARENT in CRIU's own
// pagemaps, so only the rest travels; the target completes the images from
// its store and restores lazily (the memory is local: the container runs
// while it fills in).
//
//   PreCopy pc(opts, listPids);
//   pc.start();                                  // trackers into every process
//   while (pc.round(sink).ok() && pc.stopReason().empty()) {}
//   freeze; pc.finalScan(); dump; pc.rewriteDump(imagesDir); send images
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/criu/image.h"
#include "lxmig/proto/vocabulary.h"
#include "lxmig/tracking/dirty_tracker.h"
#include "lxmig/transport/tree_transfer.h"
#include "lxmig/v1/migration.pb.h"
#include "stop_rule.h"

namespace lxmig::migration {

struct PreCopyOptions {
  std::string migrationId;
  const tracking::TrackerBackend* backend = nullptr;
  int64_t maxDowntimeMs = kDefaultMaxDowntimeMs;
  int maxRounds = kDefaultMaxRounds;
  uint64_t memoryBytes = 0;  // the container's memory, for the 3x rule
  // Freezes/thaws the container around collect() for backends that need it.
  std::function<Status()> freeze, thaw;
  // Called after each round's scan, before its pages are sent (progress).
  std::function<void(const v1::RoundReport&)> onScan;
  // Called before each round is sent with the memory worth sending (what
  // the target holds plus what it lacks): a container that grew past what
  // the target made room for asks for more, or the loop ends with the error.
  std::function<Status(uint64_t footprint)> beforeSend;
};

struct FinalStats {
  uint64_t validPages = 0;     // pages the target already holds at the freeze
  uint64_t dirtyPages = 0;     // found dirty by the final scan
  uint64_t parentPages = 0;    // pages of CRIU's dump not sent again
  uint64_t deltaPages = 0;     // pages of tracked processes sent after the dump
  uint64_t criuHeldPages = 0;  // of parentPages, those CRIU left out itself (held_pages.h)
  int64_t scanUs = 0;
  // Where the rewrite's time went (us): finding the processes and files,
  // reading and rewriting the pagemaps, reading the delta.
  int64_t rewriteListUs = 0, rewritePagemapUs = 0, rewriteReadUs = 0;
};

class PreCopy {
 public:
  using PidLister = std::function<Result<std::vector<pid_t>>()>;
  PreCopy(PreCopyOptions opts, PidLister pids);
  ~PreCopy();

  // Attaches a tracker to every process. FailedPrecondition naming the
  // process when one cannot be tracked (e.g. seccomp, ptrace denied): the
  // caller falls back to stop-and-copy; nothing is left attached then.
  Status start();
  // One round: scan (round 0: arm) and send; each call appends a round
  // directory on the target. With `mayStop`, stops early (sending nothing)
  // when the stop rule already holds after the scan; then stats.stop says
  // why. Without, the round is sent whatever the rule says (its prediction
  // is still reported).
  Result<v1::RoundReport> round(const transport::ChunkSink& sink, const transport::BytesCallback& onBytes,
                                bool mayStop = true);
  // With the container frozen: the last scan.
  Result<FinalStats> finalScan();
  // With the container frozen, after finalScan(): per process (pid inside
  // the container) the pages the dump is expected to hold, in address
  // order: what CRIU dumps (present private memory, as round 0 computes
  // it) plus every page the target holds, so that every page rewriteDump()
  // can mark PARENT is in it (a page freed since it was sent is too,
  // although the dump will lack it).
  std::map<uint32_t, tracking::PageSet> predictedDump() const;
  // With the container frozen, after finalScan(): per process (pid inside
  // the container) the pages the target holds, for a CRIU that leaves them
  // out of its dump (criu/held_pages.h). A pid two tracked processes share
  // (nested pid namespaces) is left out: CRIU dumps all of its pages.
  std::map<uint32_t, tracking::PageSet> heldPages() const;
  // After pageFilesBeforeSysv(): the shmids of the shared memory objects
  // whose discarded page files rewriteDump() rebuilds (none when they could
  // not be found).
  std::vector<uint64_t> rebuiltSharedObjects() const;
  // Rewrites CRIU's pagemaps in imagesDir (see above). Call after
  // finalScan() and the dump, with the container still frozen: page files
  // CRIU wrote to /dev/null are rebuilt from the processes' memory.
  // FailedPrecondition when the dump does not look as expected (then dump
  // again without discarding).
  // A process's rebuilt page file is written where the discarded link was,
  // append only, from start to end; `growing` (optional) is told its name
  // before the first byte, so that the caller can send it while it grows.
  // `realFilesSent`: page files CRIU wrote for real may be on their way to
  // the target already (the source streams them while CRIU dumps): none is
  // rewritten, each travels as CRIU wrote it (a CRIU built with lxmig's
  // patch left out what the target holds; another one wrote every page).
  Status rewriteDump(const std::string& imagesDir, FinalStats& stats,
                     const std::function<void(const std::string& name)>& growing = {}, bool realFilesSent = false);
  // With the container frozen, before the dump: how many page files CRIU
  // will number before SysV shared memory (one per process and one per
  // object of shmemObjects(), which rewriteDump() then reuses). Each may be
  // discarded (LxcHost::dump) and is rebuilt by rewriteDump(). 0 when the
  // container's processes cannot be listed.
  size_t pageFilesBeforeSysv();
  // With the container frozen, after pageFilesBeforeSysv() and beside the
  // dump: compares each of those shared memory objects with what the
  // target holds (reads it whole, ~50 ms for PostgreSQL's 140 MiB of
  // shared buffers), so that rewriteDump() only reads the pages that
  // changed. rewriteDump() compares itself what this did not (an error
  // here only costs that time).
  Status compareSharedFrozen();
  // Removes write-protection and fds from every process. Idempotent.
  void disarm();

  int roundsDone() const { return roundsDone_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // A shared memory object (shmemObjects()) as the target holds it: each
  // page sent, by offset in offset order, with the XXH3 of its content as
  // sent (16 bytes per page of data, however sparse the object). Shared
  // memory is compared by content, not tracked: a write through any
  // process's mapping, through a memfd's fd or through map_files is seen
  // alike, at the cost of reading the object once per round (and once in
  // the frozen window).
  struct SharedObject {
    std::vector<std::pair<uint64_t, uint64_t>> pages;
    // The memfd CRIU will restore it as, read at the object's first round
    // only: the target keeps an object the same way in every round (a
    // memfd's name never changes, nor does an unlinked file's).
    std::optional<std::string> memfdName;
    bool named = false;
  };

 private:
  struct Proc {
    pid_t pid = 0;
    pid_t vpid = 0;
    uint64_t startTime = 0;
    std::unique_ptr<tracking::DirtyTracker> tracker;
    tracking::PageSet valid;  // the target holds the current content of these pages
    bool armed = false;
    bool protectAsRead = false;  // armed deferred: protect each range before reading it
    uint64_t protectedTo = 0;    // while protectAsRead: everything below is protected (and maybe read)
  };
  Result<uint64_t> scan(std::map<pid_t, tracking::PageSet>& toSend, bool armNew,
                        std::map<pid_t, tracking::PageSet>* once = nullptr);
  Status refreshProcesses(bool attachNew);
  Result<std::unique_ptr<Proc>> attach(pid_t pid);
  Status protectPieces(Proc& p, const std::vector<tracking::Range>& pieces, uint64_t total);
  // The pages of shared memory object `shmid` (open as `fd`) whose content
  // is still what the target holds.
  Result<tracking::PageSet> unchangedPages(uint64_t shmid, int fd, const std::string& name,
                                           std::vector<char>& buf) const;
  // `pid` > 0: `src` is that process's /proc/PID/mem, and scattered pages
  // are gathered with process_vm_readv (a pread per range costs a syscall
  // and a page walk each: W4's ~25,000 ranges took 115 ms frozen).
  Status readPagesInto(int src, const std::string& srcName, const std::vector<criu::PagemapEntry>& entries,
                       const std::string& outPath, int out, pid_t pid = 0);

  PreCopyOptions opts_;
  PidLister pids_;
  std::map<pid_t, std::unique_ptr<Proc>> procs_;  // by host pid
  std::map<uint64_t, SharedObject> shared_;       // by CRIU's shmid
  // shmemObjects() of the frozen container, found once for the dump and
  // its rewrite.
  std::optional<std::map<uint64_t, std::string>> frozenObjects_;
  // compareSharedFrozen()'s result, by shmid.
  std::map<uint64_t, tracking::PageSet> frozenSame_;
  std::vector<std::string> warnings_;
  int roundsDone_ = 0;
  int64_t lastScanNs_ = 0;
  double sendRate_ = 0;
  StopRule stopRule_;
  std::vector<char> buf_;
};

// True when path is a link to /dev/null: a page file whose content CRIU
// discarded (LxcHost::dump with discardPages), read back from the frozen
// processes by rewriteDump().
bool isDiscarded(const std::string& path);

// Shared memory objects CRIU dumps with the processes (memfd files and
// shared anonymous mappings, not SysV segments, which it dumps last), by
// CRIU's shmid (their inode): a /proc path that opens the object itself,
// through a mapping (map_files) or an fd of one of `pids`.
Result<std::map<uint64_t, std::string>> shmemObjects(const std::vector<pid_t>& pids);

// Host pid -> pid in its innermost pid namespace and start time.
struct PidIdentity {
  pid_t vpid = 0;
  uint64_t startTime = 0;
};
Result<PidIdentity> pidIdentity(pid_t pid);

// The pages CRIU dumps of a process (as far as /proc tells before the dump):
// present private memory, not the shared zero page nor untouched page-cache
// pages of private file mappings, plus the page CRIU's parasite writes.
Result<tracking::PageSet> dumpedPages(pid_t pid);

}  // namespace lxmig::migration
