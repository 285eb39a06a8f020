#include "pagemap_scan.h"

#include <sys/ioctl.h>

#include <cerrno>

namespace lxmig::tracking::kabi {

int pagemapScan(int fd, uint64_t start, uint64_t end, uint64_t flags, uint64_t mask, uint64_t inverted, uint64_t anyof,
                uint64_t returnMask, std::vector<PageRegion>& out) {
  PageRegion vec[512];
  while (start < end) {
    PmScanArg a{};
    a.size = sizeof a;
    a.flags = flags;
    a.start = start;
    a.end = end;
    a.vec = reinterpret_cast<uint64_t>(vec);
    a.vecLen = 512;
    a.categoryInverted = inverted;
    a.categoryMask = mask;
    a.categoryAnyofMask = anyof;
    a.returnMask = returnMask;
    long n = ::ioctl(fd, kPagemapScan, &a);
    if (n < 0) return -errno;
    for (long i = 0; i < n; ++i) out.push_back(vec[i]);
    if (a.walkEnd <= start) break;
    start = a.walkEnd;
  }
  return 0;
}

Status uffdApiWpAsync(int uffd) {
  // No WP_UNPOPULATED: holes stay unprotected (see writeProtect in tracker_uffd.cc).
  UffdioApi api{kUffdApi, kUffdFeatureWpAsync, 0};
  if (::ioctl(uffd, kUffdioApi, &api) != 0) return Status::fromErrno("UFFDIO_API (WP_ASYNC)", "userfaultfd");
  return okStatus();
}

}  // namespace lxmig::tracking::kabi
