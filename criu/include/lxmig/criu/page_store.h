// Target side of pre-copy: the pages received in rounds, kept so that the
// final CRIU images can be completed without copying memory in the frozen
// window. Shared memory objects are kept the same way as processes, under
// their pagemap's name (pagemap-shmem-<id>.img, addresses being offsets).
//
// Round 0 brings every present page of each process in address order: its
// pages file becomes the process's flat store (store/flat-<vpid>.img) and
// its address list the store's layout. Later rounds overwrite their pages in
// place; pages outside the layout (memory that became present later) go to
// store/extra-<vpid>.img. After the dump the source sends CRIU's pagemaps
// with every page the target holds marked PARENT plus the pages it lacks;
// assemble() turns them into plain, self-contained CRIU images: the flat
// file becomes CRIU's pages file in place, with the sent pages written into
// it. When the process's pages are still exactly the layout nothing moves;
// pages that appeared or vanished since round 0 shift what follows them
// inside the file (moved, never copied to a new file).
//
// To keep even those moves out of the frozen window, the source sends its
// prediction of the dump's pages right after the final scan, and
// prelayout() lays the flat file out that way while CRIU dumps on the
// source; assemble() then moves only what the prediction missed.
//
// With a CRIU that reads where each pagemap entry's pages start
// (withPagemapOffsets(): lxmig's pagemap-offsets patch) nothing moves at
// all: pages outside round 0's layout are appended to the flat file as the
// rounds bring them, assemble() writes the delta over the layout's stale
// copies (appending the pages it does not place), the flat file becomes
// the pages file as it is, and each entry names the offset of its pages
// in it (pages that vanished stay in the file, unnamed); prelayout() then
// does nothing.
//
// A shared memory object whose round pagemap names the memfd CRIU restores
// it as is kept instead whole in a memfd of that name (its mirror), written
// as each round is applied and, at assemble(), with the delta, holes
// punched where the object has none: CRIU's restore takes the mirror as the
// object itself (criu/patches, shmem-held), and its content is not written
// in the frozen window. The store keeps no other copy of such an object:
// its images stay as sent (PARENT entries), so a restore that does not take
// the mirror fails rather than restoring anything else; a mirror that
// cannot be written fails the round.
//
// (CRIU's own answer, a "parent" image chain, cannot be restored lazily from
// local images by CRIU 4.2.1: its lazy-pages daemon never completes faults
// on pages read from a parent; see docs/architecture.md.)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"
#include "lxmig/criu/image.h"
#include "lxmig/tracking/page_set.h"

namespace lxmig::criu {

struct AssembleStats {
  uint64_t pages = 0;          // pages in the assembled images
  uint64_t fromStore = 0;      // of which taken from the store
  uint64_t copiedBytes = 0;    // bytes copied from the extra file (pages outside the layout)
  uint64_t movedBytes = 0;     // bytes moved inside a pages file (pages appeared or vanished)
  uint32_t rebuilt = 0;        // processes whose pages file was not exactly the layout
  uint64_t joinedEntries = 0;  // pagemap entries joined to their neighbour (joinAdjacentEntries)
};

struct PrelayoutStats {
  uint64_t movedBytes = 0;   // moved inside flat files
  uint64_t copiedBytes = 0;  // copied in from extra files
  uint32_t procs = 0;        // processes laid out
};

class PageStore {
 public:
  explicit PageStore(std::string imagesDir) : dir_(std::move(imagesDir)) {}
  // Folds every round directory (rounds/NNNN) not applied yet into the
  // store and removes it. Call after each round's stream has ended.
  Status applyRounds();
  // Lays out the flat files as `predicted` says (pages by pid inside the
  // container, in address order): every page the store holds and the
  // prediction names goes to its offset in the pages file the dump is
  // expected to give; named pages the store lacks leave a hole for the
  // delta; held pages it does not name are dropped (the source predicts
  // every page it will mark PARENT). Call after the last applyRounds().
  // A failure leaves the store unusable: assemble() then fails too.
  Result<PrelayoutStats> prelayout(const std::map<uint32_t, tracking::PageSet>& predicted);
  // Completes CRIU's images in the images dir (see above).
  Result<AssembleStats> assemble();
  // Pages held so far (the rounds' layouts and extras): what a restore
  // would read, less what the final delta adds.
  uint64_t heldPages() const;

  // Shared memory pages are charged, for as long as they live, to the
  // cgroup of the task that first wrote them, and a mirror's live on as
  // the restored container's: the mirrors' new pages are written by a
  // child process that first joins the cgroup whose procs file (cgroup.procs
  // or tasks; not owned) `open` gives, called when the first mirror is made
  // (a container without shared memory gets no cgroup). A failure keeps the
  // objects in the store, as without mirrors. Without an opener, this
  // process writes them.
  void chargeMirrorsWith(std::function<Result<int>()> open) { chargeOpener_ = std::move(open); }
  // Keeps no mirror (before the first round).
  void withoutMirrors() { mirrorsOff_ = true; }
  // The images' pagemaps may name where each entry's pages are (see above);
  // pages outside round 0's layout are then appended to the flat file as
  // the rounds bring them. Before the first round.
  void withPagemapOffsets() { offsets_ = true; }
  // After assemble(): (CRIU's shmid, memfd) of each mirror complete at the
  // dump, for the restore to hand over. Valid while the store lives.
  std::vector<std::pair<uint64_t, int>> mirrors() const;
  // Objects kept in mirrors at most (each holds a descriptor of the agent,
  // and the peer names the objects); the others are restored as before.
  static constexpr size_t kMaxMirrors = 64;

  // Where a stretch of an assembled pages file comes from (defined in
  // page_store.cc; opaque here).
  struct Piece;

 private:
  struct Proc {
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> layout;  // start -> (end, offset in flat)
    uint64_t layoutPages = 0;
    std::map<uint64_t, uint64_t> extra;  // page address -> offset in extra file
    uint64_t extraSize = 0;
  };
  struct Mirror {
    UniqueFd fd;
    tracking::PageSet held;  // pages written into it (offsets)
    bool complete = false;   // assemble() brought it to the dump
  };
  Status applyRound(int k);
  // Writes the PRESENT pages of `pm` (data in `pagesPath`, in entry order)
  // into `m`.
  Status writeMirror(const std::string& key, Mirror& m, const Pagemap& pm, const std::string& pagesPath);
  // Brings the mirror to the dump whose pagemap of the object is `pm`.
  Status completeMirror(const std::string& key, Mirror& m, const Pagemap& pm, const std::string& pagesPath);
  static Status relayout(int flat, const std::string& flatName, const std::vector<Piece>& pieces, int extra, int delta,
                         const std::string& deltaName, AssembleStats& as);
  // assemble() of one process with offsets: the flat file as it is, the
  // delta written over the layout's stale copies or appended, `pm`
  // rewritten to name where each page is.
  Status assembleInPlace(const std::string& key, const Proc& p, Pagemap& pm, const std::string& pagesPath,
                         AssembleStats& as);
  // Offset in the flat file of the page at addr, or UINT64_MAX.
  static uint64_t flatOffset(const Proc& p, uint64_t addr);
  std::string flatPath(const std::string& key) const;
  std::string extraPath(const std::string& key) const;

  std::string dir_;
  // By "<pid>" (a process, pid inside the container) or "shmem-<id>" (a
  // shared memory object by CRIU's shmid: addresses are offsets in it).
  std::map<std::string, Proc> procs_;
  std::map<std::string, Mirror> mirrors_;  // by key "shmem-<id>"
  int chargeTo_ = -1;
  std::function<Result<int>()> chargeOpener_;
  bool mirrorsOff_ = false;
  bool offsets_ = false;
  Status broken_;  // a prelayout() that failed halfway
  int nextRound_ = 0;
};

}  // namespace lxmig::criu
