// uffd-wp: the process creates a userfaultfd (one injected system call),
// the agent takes it with pidfd_getfd and registers the process's private
// anonymous writable mappings for write-protect in async mode: a write to a
// protected page is resolved by the kernel at once (the process never
// waits on the agent) and leaves the page marked written. PAGEMAP_SCAN on
// /proc/PID/pagemap returns the written pages and protects them again in
// the same call, so nothing written between two scans is missed.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/tracking/dirty_tracker.h"
#include "lxmig/tracking/inject.h"
#include "pagemap_scan.h"

namespace lxmig::tracking {
namespace {

constexpr const char* kLog = "tracker";

class UffdWpTracker final : public DirtyTracker {
 public:
  UffdWpTracker(pid_t pid, UniqueFd uffd, UniqueFd pagemap)
      : pid_(pid), uffd_(std::move(uffd)), pagemap_(std::move(pagemap)) {}
  ~UffdWpTracker() override { disarm(); }
  const char* name() const override { return "uffd-wp"; }

  Result<PageSet> arm() override {
    PageSet armed;
    LXMIG_RETURN_IF_ERROR(registerNew(armed, true));
    return armed;
  }

  Result<PageSet> armDeferred() override {
    PageSet armed;
    LXMIG_RETURN_IF_ERROR(registerNew(armed, false));
    return armed;
  }

  Status protect(const Range& r) override {
    PageSet todo;
    todo.add(r);
    todo.intersect(registered_);
    for (const auto& m : todo.ranges()) {
      int rc = writeProtect(m);
      if (rc == -ESRCH) return notFound("pid " + std::to_string(pid_) + " exited");
      // -EPERM: the mapping changed under us; the next collect() finds it
      // unwatched. Anything else leaves the pages unprotected, which only
      // means they are reported written.
      if (rc != 0 && rc != -EPERM) return Status::fromErrno("PAGEMAP_SCAN (protect) of pid", std::to_string(pid_), -rc);
    }
    return okStatus();
  }

  Result<TrackerScan> collect(bool armNew) override {
    TrackerScan s;
    std::vector<kabi::PageRegion> regs;
    for (const auto& r : registered_.ranges()) {
      regs.clear();
      // Written pages that hold memory (present or swapped, not the shared
      // zero page, which CRIU does not dump either), protected again in
      // the same call. Holes are left alone (see writeProtect).
      int rc = kabi::pagemapScan(pagemap_.get(), r.start, r.end, kabi::kPmScanWpMatching | kabi::kPmScanCheckWpasync,
                                 kabi::kPageIsWritten | kabi::kPageIsPfnzero, kabi::kPageIsPfnzero,
                                 kabi::kPageIsPresent | kabi::kPageIsSwapped,
                                 kabi::kPageIsWritten | kabi::kPageIsPresent | kabi::kPageIsSwapped, regs);
      if (rc == -ESRCH || (rc == -EPERM && !alive())) return notFound("pid " + std::to_string(pid_) + " exited");
      if (rc == -EPERM) {
        // Some memory in the range is no longer ours (unmapped and mapped
        // again, or moved): it was not watched throughout.
        registered_.remove(r);
        continue;
      }
      if (rc != 0) return Status::fromErrno("PAGEMAP_SCAN of pid", std::to_string(pid_), -rc);
      s.watched.add(r);
      for (const auto& g : regs)
        if (g.categories & (kabi::kPageIsPresent | kabi::kPageIsSwapped)) s.written.add(g.start, g.end);
    }
    if (armNew) LXMIG_RETURN_IF_ERROR(registerNew(s.armed, true));
    return s;
  }

  void disarm() override {
    if (!uffd_) return;
    // Unregistering clears the write-protect bits; closing the last
    // reference would too, this is explicit.
    for (const auto& r : registered_.ranges()) {
      kabi::UffdioRange range{r.start, r.end - r.start};
      (void)::ioctl(uffd_.get(), kabi::kUffdioUnregister, &range);
    }
    registered_.clear();
    uffd_.reset();
  }

 private:
  bool alive() const { return ::kill(pid_, 0) == 0; }

  // Write-protects the pages of `r` that hold memory and are not protected
  // yet (a page is "written" while it is not protected; what the scan
  // reports is irrelevant here). 0 or -errno.
  //
  // Holes (pages never touched) are not protected: PAGEMAP_SCAN would put
  // a uffd-wp marker there, which /proc/PID/pagemap shows as a swapped
  // page, so CRIU would dump and restore every untouched page of every
  // watched mapping as a page of zeros (a thread's whole 8 MiB stack; seen
  // here as 2,112 pages a 1 GiB workload did not have). A hole needs no
  // protection: the page a first touch puts there is not protected, so the
  // next scan reports it written.
  int writeProtect(const Range& r) {
    std::vector<kabi::PageRegion> ignored;
    return kabi::pagemapScan(pagemap_.get(), r.start, r.end, kabi::kPmScanWpMatching, kabi::kPageIsWritten, 0,
                             kabi::kPageIsPresent | kabi::kPageIsSwapped, kabi::kPageIsWritten, ignored);
  }

  // Registers trackable memory not registered yet; with `protectNow`
  // protects it too (otherwise protect() does, range by range).
  Status registerNew(PageSet& armed, bool protectNow) {
    auto maps = readFile("/proc/" + std::to_string(pid_) + "/maps");
    if (!maps.ok()) return notFound("pid " + std::to_string(pid_) + " exited");
    for (const auto& e : parseMaps(*maps)) {
      if (!trackable(e)) continue;
      PageSet missing;
      missing.add(e.range);
      for (const auto& r : registered_.ranges()) missing.remove(r);
      for (const auto& m : missing.ranges()) {
        kabi::UffdioRegister reg{{m.start, m.end - m.start}, kabi::kUffdRegisterModeWp, 0};
        if (::ioctl(uffd_.get(), kabi::kUffdioRegister, &reg) != 0) {
          // Changed under us or not registrable: stays unwatched (dirty).
          LXMIG_LOG(kDebug, kLog) << "pid " << pid_ << ": cannot watch " << std::hex << m.start << "-" << m.end
                                  << std::dec << ": " << std::strerror(errno);
          continue;
        }
        int rc = protectNow ? writeProtect(m) : 0;
        if (rc != 0) {
          kabi::UffdioRange range{m.start, m.end - m.start};
          (void)::ioctl(uffd_.get(), kabi::kUffdioUnregister, &range);
          continue;
        }
        registered_.add(m);
        armed.add(m);
      }
    }
    return okStatus();
  }

  pid_t pid_;
  UniqueFd uffd_;
  UniqueFd pagemap_;
  PageSet registered_;
};

}  // namespace

Result<std::unique_ptr<DirtyTracker>> createUffdWpTracker(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd pm(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pm) {
    if (errno == ENOENT) return notFound("pid " + std::to_string(pid) + " exited");
    return Status::fromErrno("open", path);
  }
  LXMIG_ASSIGN_OR_RETURN(UniqueFd uffd, stealUserfaultfd(pid));
  LXMIG_RETURN_IF_ERROR(kabi::uffdApiWpAsync(uffd.get()).withContext("pid " + std::to_string(pid)));
  return std::unique_ptr<DirtyTracker>(new UffdWpTracker(pid, std::move(uffd), std::move(pm)));
}

}  // namespace lxmig::tracking
