// What each dirty tracker needs of the kernel, tried in this process on a
// page of its own. Kept apart from the backends: probing must not link
// them (tracker_uffd.cc pulls in the system call injector).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "pagemap_scan.h"
#include "probes.h"

namespace lxmig::tracking {
namespace {

Status probeUffdWp() {
  UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!fd)
    return Status::fromErrno("userfaultfd", "this process")
        .withContext("kernel without userfaultfd? (CONFIG_USERFAULTFD)");
  LXMIG_RETURN_IF_ERROR(kabi::uffdApiWpAsync(fd.get()).withContext("kernel older than 6.7 or without uffd-wp"));
  const size_t len = 4 * kPageSize;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::fromErrno("mmap", "probe page");
  auto start = reinterpret_cast<uint64_t>(p);
  Status st;
  kabi::UffdioRegister reg{{start, len}, kabi::kUffdRegisterModeWp, 0};
  if (::ioctl(fd.get(), kabi::kUffdioRegister, &reg) != 0)
    st = Status::fromErrno("UFFDIO_REGISTER (MODE_WP)", "probe page");
  UniqueFd pm(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (st.ok()) {
    std::vector<kabi::PageRegion> regs;
    int rc = kabi::pagemapScan(pm.get(), start, start + len, kabi::kPmScanWpMatching | kabi::kPmScanCheckWpasync,
                               kabi::kPageIsWritten, 0, 0, kabi::kPageIsWritten, regs);
    if (rc == 0) {
      static_cast<volatile char*>(p)[kPageSize] = 1;
      regs.clear();
      rc = kabi::pagemapScan(pm.get(), start, start + len, kabi::kPmScanWpMatching | kabi::kPmScanCheckWpasync,
                             kabi::kPageIsWritten, 0, 0, kabi::kPageIsWritten, regs);
      if (rc == 0 && (regs.size() != 1 || regs[0].start != start + kPageSize || regs[0].end != start + 2 * kPageSize))
        st = failedPrecondition("PAGEMAP_SCAN did not report exactly the written page");
    }
    if (rc != 0 && st.ok())
      st = Status::fromErrno("PAGEMAP_SCAN", "/proc/self/pagemap", -rc).withContext("kernel older than 6.7?");
  }
  ::munmap(p, len);
  return st;
}

Status probeSoftDirty() {
  // Fresh pages of a kernel with CONFIG_MEM_SOFT_DIRTY are soft-dirty.
  void* p = ::mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::fromErrno("mmap", "probe page");
  static_cast<volatile char*>(p)[0] = 1;
  Status st = writeFile("/proc/self/clear_refs", "4");
  static_cast<volatile char*>(p)[0] = 2;
  uint64_t word = 0;
  if (st.ok()) {
    UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    auto addr = reinterpret_cast<uint64_t>(p);
    if (!fd || ::pread(fd.get(), &word, 8, static_cast<off_t>(addr / kPageSize * 8)) != 8)
      st = Status::fromErrno("read", "/proc/self/pagemap");
  }
  ::munmap(p, kPageSize);
  if (!st.ok()) return st;
  if (!(word & (1ull << 55))) return failedPrecondition("kernel built without CONFIG_MEM_SOFT_DIRTY");
  return okStatus();
}

}  // namespace

const TrackerProbe kUffdWpProbe = {
    "uffd-wp", "userfaultfd write-protect (async) + PAGEMAP_SCAN, injected into each process", probeUffdWp};
const TrackerProbe kSoftDirtyProbe = {"soft-dirty", "/proc/PID/clear_refs + pagemap soft-dirty bit", probeSoftDirty};
const TrackerProbe kNoneProbe = {"none", "no tracking: stop-and-copy", [] { return okStatus(); }};

const std::vector<TrackerProbe>& trackerProbes() {
  static const std::vector<TrackerProbe> kProbes = {kUffdWpProbe, kSoftDirtyProbe, kNoneProbe};
  return kProbes;
}

}  // namespace lxmig::tracking
