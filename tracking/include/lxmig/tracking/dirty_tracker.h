// Dirty-page tracking for pre-copy, one tracker per process, three
// backends behind one interface (DESIGN.md, "A migration"):
//   uffd-wp     userfaultfd write-protect in async mode, created inside the
//               process by an injected system call, scanned with PAGEMAP_SCAN
//   soft-dirty  /proc/PID/clear_refs + pagemap bit 55 (kernels that have it)
//   none        nothing is watched: stop-and-copy
// Only private anonymous writable memory is watched. Everything else (file
// mappings, shared memory, memory a process maps after its tracker armed
// and before the next collect) is reported as unwatched, and the caller
// treats unwatched memory as always dirty.
//
//   auto t = createTracker("uffd-wp", pid);
//   PageSet armed = t->arm();            // watching from now on
//   ... read the pages of `armed` ...
// or, protecting as the reads go (round 0):
//   PageSet armed = t->armDeferred();
//   for each range r to read: t->protect(r); ... read r ...
//   TrackerScan s = t->collect(true);    // what changed since arm()
//   t->disarm();                          // also done by the destructor
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/tracking/page_set.h"

namespace lxmig::tracking {

struct TrackerScan {
  // Watched without interruption since the previous arm()/collect(): a page
  // here that is not in `written` has not changed since then.
  PageSet watched;
  // Pages of `watched` written since then (present or swapped ones; written
  // pages that were discarded since are gone and not listed).
  PageSet written;
  // Memory that started to be watched during this call: its present pages
  // must be read now, like arm()'s.
  PageSet armed;
};

class DirtyTracker {
 public:
  virtual ~DirtyTracker() = default;
  virtual const char* name() const = 0;
  // True when collect() is only exact while the process is frozen (the
  // caller freezes the container around it).
  virtual bool collectNeedsFreeze() const { return false; }
  // Starts watching the process's trackable memory; returns it.
  virtual Result<PageSet> arm() = 0;
  // Like arm(), but a backend that can leaves the memory unprotected: each
  // page then counts as written until protect() covers it. A caller that
  // reads every page (round 0) protects each range right before reading
  // it, so a write to a page not read yet costs the workload no fault and
  // the page no second send. Safe whatever the caller protects: an
  // unprotected page is reported written by the next collect().
  virtual Result<PageSet> armDeferred() { return arm(); }
  // Protects `r` (armed memory; other pages in it are ignored): writes
  // from now on are seen. Protecting a page again forgets the writes since
  // it was last protected or collected: never protect a page already read.
  virtual Status protect(const Range& r) {
    (void)r;
    return okStatus();
  }
  // What changed since the previous arm()/collect(). With `armNew`, memory
  // that appeared since is armed too (reported in `armed`). NotFound: the
  // process is gone.
  virtual Result<TrackerScan> collect(bool armNew) = 0;
  // Stops watching and leaves no trace in the process. Idempotent.
  virtual void disarm() = 0;
};

struct TrackerProbe {
  const char* name;
  const char* description;
  // OK when the backend works on this kernel; else why not, with a hint.
  Status (*probe)();
};

struct TrackerBackend : TrackerProbe {
  Result<std::unique_ptr<DirtyTracker>> (*create)(pid_t pid);
};

// Every backend, best first ("none" last).
const std::vector<TrackerBackend>& trackerBackends();
// The same backends' probes, in the same order, for a caller that only asks
// what works here (doctor): linking these pulls in no backend, so no
// ptrace system call injection either.
const std::vector<TrackerProbe>& trackerProbes();
// "auto" picks the first backend whose probe passes; a named backend is
// checked. InvalidArgument for an unknown name.
Result<const TrackerBackend*> chooseTracker(const std::string& requested);

// Pages of `ranges` in `pid` that CRIU would dump: present or swapped, not
// the zero page, and with skipPageCache (private file mappings) not page
// cache either. PAGEMAP_SCAN where the kernel has it, /proc/PID/pagemap
// otherwise.
Result<PageSet> presentPages(pid_t pid, const std::vector<Range>& ranges, bool skipPageCache = false);

// Memory of `pid` still registered with a userfaultfd for write-protection
// (empty once every tracker in it is disarmed). Needs PAGEMAP_SCAN.
Result<PageSet> writeProtectRegistered(pid_t pid);

// --- pure helpers, exposed for unit tests ---

struct MapsEntry {
  Range range;
  std::string perms;  // "rw-p"
  uint64_t inode = 0;
  std::string path;
};
std::vector<MapsEntry> parseMaps(std::string_view text);
// Private, writable, anonymous (heap, stack, anonymous mappings).
bool trackable(const MapsEntry& e);
// Private mappings whose written pages CRIU dumps (all but [vvar] and friends;
// CRIU dumps the vDSO pages too).
bool dumpedPrivate(const MapsEntry& e);
// Soft-dirty / present bits of /proc/PID/pagemap words for pages starting at
// `base`: fills present (present or swapped) and softDirty.
void decodePagemapWords(const uint64_t* words, size_t n, uint64_t base, PageSet& present, PageSet& softDirty);

}  // namespace lxmig::tracking
