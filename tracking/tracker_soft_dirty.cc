// soft-dirty: writing "4" to /proc/PID/clear_refs clears every page's
// soft-dirty bit and write-protects the page tables; a later write sets
// bit 55 of the page's /proc/PID/pagemap word. New mappings are soft-dirty
// as a whole, so a replaced mapping shows up as written. Reading the bits
// and clearing them are two steps: a write in between would be lost, so
// collect() must run with the process frozen (collectNeedsFreeze).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/tracking/dirty_tracker.h"

namespace lxmig::tracking {
namespace {

class SoftDirtyTracker final : public DirtyTracker {
 public:
  explicit SoftDirtyTracker(pid_t pid) : pid_(pid), proc_("/proc/" + std::to_string(pid)) {}
  const char* name() const override { return "soft-dirty"; }
  bool collectNeedsFreeze() const override { return true; }

  Result<PageSet> arm() override {
    LXMIG_ASSIGN_OR_RETURN(PageSet now, trackableNow());
    LXMIG_RETURN_IF_ERROR(clear());
    watched_ = now;
    return now;
  }

  Result<TrackerScan> collect(bool armNew) override {
    TrackerScan s;
    LXMIG_ASSIGN_OR_RETURN(PageSet now, trackableNow());
    UniqueFd fd(::open((proc_ + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return notFound("pid " + std::to_string(pid_) + " exited");
    // Memory still mapped is watched: a mapping replaced meanwhile is
    // soft-dirty as a whole and shows up in `written`.
    PageSet keep = watched_;
    keep.intersect(now);
    for (const auto& r : keep.ranges()) {
      std::vector<uint64_t> words(r.pages());
      ssize_t n = ::pread(fd.get(), words.data(), words.size() * 8, static_cast<off_t>(r.start / kPageSize * 8));
      if (n < 0) return Status::fromErrno("read", proc_ + "/pagemap");
      PageSet present, dirty;
      decodePagemapWords(words.data(), static_cast<size_t>(n) / 8, r.start, present, dirty);
      dirty.intersect(present);
      for (const auto& d : dirty.ranges()) s.written.add(d);
      s.watched.add(r);
    }
    if (armNew) {
      PageSet fresh = now;
      for (const auto& r : keep.ranges()) fresh.remove(r);
      s.armed = fresh;
      watched_ = now;
    } else {
      watched_ = keep;
    }
    LXMIG_RETURN_IF_ERROR(clear());
    return s;
  }

  void disarm() override { watched_.clear(); }  // soft-dirty bits cost nothing

 private:
  Result<PageSet> trackableNow() {
    auto maps = readFile(proc_ + "/maps");
    if (!maps.ok()) return notFound("pid " + std::to_string(pid_) + " exited");
    PageSet out;
    for (const auto& e : parseMaps(*maps))
      if (trackable(e)) out.add(e.range);
    return out;
  }
  Status clear() { return writeFile(proc_ + "/clear_refs", "4"); }

  pid_t pid_;
  std::string proc_;
  PageSet watched_;
};

}  // namespace

Result<std::unique_ptr<DirtyTracker>> createSoftDirtyTracker(pid_t pid) {
  if (::access(("/proc/" + std::to_string(pid) + "/clear_refs").c_str(), W_OK) != 0)
    return notFound("pid " + std::to_string(pid) + " exited");
  return std::unique_ptr<DirtyTracker>(new SoftDirtyTracker(pid));
}

}  // namespace lxmig::tracking
