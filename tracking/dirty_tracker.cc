#include "lxmig/tracking/dirty_tracker.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "pagemap_scan.h"
#include "probes.h"

namespace lxmig::tracking {

// Defined in tracker_*.cc.
Result<std::unique_ptr<DirtyTracker>> createUffdWpTracker(pid_t pid);
Result<std::unique_ptr<DirtyTracker>> createSoftDirtyTracker(pid_t pid);
Result<std::unique_ptr<DirtyTracker>> createNoneTracker(pid_t pid);

std::vector<MapsEntry> parseMaps(std::string_view text) {
  std::vector<MapsEntry> out;
  for (const auto& line : split(text, '\n')) {
    // start-end perms offset dev inode [path]
    MapsEntry e;
    size_t dash = line.find('-');
    size_t sp = line.find(' ');
    if (dash == std::string::npos || sp == std::string::npos || dash > sp) continue;
    e.range.start = std::strtoull(line.substr(0, dash).c_str(), nullptr, 16);
    e.range.end = std::strtoull(line.substr(dash + 1, sp - dash - 1).c_str(), nullptr, 16);
    auto fields = split(line, ' ');
    if (fields.size() < 5) continue;
    e.perms = fields[1];
    e.inode = std::strtoull(fields[4].c_str(), nullptr, 10);
    // The path is everything after the inode column, spaces included.
    size_t pos = 0;
    for (int f = 0; f < 5 && pos != std::string::npos; ++f) {
      pos = line.find_first_not_of(' ', pos);
      pos = line.find(' ', pos);
    }
    if (pos != std::string::npos) e.path = std::string(trim(line.substr(pos)));
    out.push_back(std::move(e));
  }
  return out;
}

bool dumpedPrivate(const MapsEntry& e) {
  if (e.perms.size() < 4 || e.perms[3] != 'p') return false;
  return e.path != "[vvar]" && e.path != "[vvar_vclock]" && e.path != "[vsyscall]" && e.path != "[uprobes]";
}

bool trackable(const MapsEntry& e) {
  if (e.perms.size() < 4 || e.perms[1] != 'w' || e.perms[3] != 'p' || e.inode != 0) return false;
  if (e.path.empty() || e.path == "[heap]" || e.path == "[stack]" || startsWith(e.path, "[anon:")) return true;
  return false;  // [vvar], [vdso], deleted files, ...
}

void decodePagemapWords(const uint64_t* w, size_t n, uint64_t base, PageSet& present, PageSet& softDirty) {
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kSoftDirty = 1ull << 55;
  for (size_t i = 0; i < n; ++i) {
    uint64_t a = base + i * kPageSize;
    if (w[i] & (kPresent | kSwapped)) present.add(a, a + kPageSize);
    if (w[i] & kSoftDirty) softDirty.add(a, a + kPageSize);
  }
}

Result<PageSet> writeProtectRegistered(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return notFound("pid " + std::to_string(pid) + " exited");
    return Status::fromErrno("open", path);
  }
  std::vector<kabi::PageRegion> regs;
  constexpr uint64_t kUserEnd = 0x7ffffffff000ull;
  int rc = kabi::pagemapScan(fd.get(), 0, kUserEnd, 0, kabi::kPageIsWpallowed, 0, 0, kabi::kPageIsWpallowed, regs);
  if (rc != 0) return Status::fromErrno("PAGEMAP_SCAN", path, -rc);
  PageSet out;
  for (const auto& g : regs) out.add(g.start, g.end);
  return out;
}

Result<PageSet> presentPages(pid_t pid, const std::vector<Range>& ranges, bool skipPageCache) {
  const std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return notFound("pid " + std::to_string(pid) + " exited");
    return Status::fromErrno("open", path);
  }
  PageSet out;
  bool scanWorks = true;
  for (const auto& r : ranges) {
    if (scanWorks) {
      std::vector<kabi::PageRegion> regs;
      // Present or swapped, not the shared zero page, not a page cache page
      // (an untouched page of a private file mapping): what CRIU dumps.
      const uint64_t notMask = kabi::kPageIsPfnzero | (skipPageCache ? kabi::kPageIsFile : 0);
      int rc = kabi::pagemapScan(fd.get(), r.start, r.end, 0, notMask, notMask,
                                 kabi::kPageIsPresent | kabi::kPageIsSwapped, kabi::kPageIsPresent, regs);
      if (rc == 0) {
        for (const auto& g : regs) out.add(g.start, g.end);
        continue;
      }
      if (rc != -ENOTTY && rc != -EINVAL) return Status::fromErrno("PAGEMAP_SCAN", path, -rc);
      scanWorks = false;
    }
    std::vector<uint64_t> words(r.pages());
    ssize_t n = ::pread(fd.get(), words.data(), words.size() * 8, static_cast<off_t>(r.start / kPageSize * 8));
    if (n < 0) return Status::fromErrno("read", path);
    // Bit 61: page cache or shared anonymous page (CRIU skips those here).
    if (skipPageCache)
      for (auto& w : words)
        if (w & (1ull << 61)) w = 0;
    PageSet ignored;
    decodePagemapWords(words.data(), static_cast<size_t>(n) / 8, r.start, out, ignored);
  }
  return out;
}

const std::vector<TrackerBackend>& trackerBackends() {
  // In the order of trackerProbes().
  static const std::vector<TrackerBackend> kBackends = {
      {kUffdWpProbe, createUffdWpTracker},
      {kSoftDirtyProbe, createSoftDirtyTracker},
      {kNoneProbe, createNoneTracker},
  };
  return kBackends;
}

Result<const TrackerBackend*> chooseTracker(const std::string& requested) {
  const auto& all = trackerBackends();
  if (requested.empty() || requested == "auto") {
    for (const auto& b : all)
      if (b.probe().ok()) return &b;
    return &all.back();
  }
  for (const auto& b : all) {
    if (requested != b.name) continue;
    if (Status st = b.probe(); !st.ok())
      return failedPrecondition("tracker `" + requested + "` does not work here: " + st.message());
    return &b;
  }
  return invalidArgument("unknown tracker `" + requested + "` (uffd-wp, soft-dirty, none or auto)");
}

}  // namespace lxmig::tracking
