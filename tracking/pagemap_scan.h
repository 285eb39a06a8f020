// Kernel ABI for PAGEMAP_SCAN (Linux 6.7) and userfaultfd write-protect in
// async mode (Linux 6.7). Debian 12's headers predate both, so the
// definitions are spelled out here (values from the kernel's uapi headers).
#pragma once

#include <linux/ioctl.h>
#include <linux/types.h>
#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/tracking/page_set.h"

namespace lxmig::tracking::kabi {

struct PageRegion {
  uint64_t start, end, categories;
};
struct PmScanArg {
  uint64_t size, flags, start, end, walkEnd, vec, vecLen, maxPages;
  uint64_t categoryInverted, categoryMask, categoryAnyofMask, returnMask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kPmScanWpMatching = 1u << 0;
constexpr uint64_t kPmScanCheckWpasync = 1u << 1;
constexpr uint64_t kPageIsWpallowed = 1u << 0;
constexpr uint64_t kPageIsWritten = 1u << 1;
constexpr uint64_t kPageIsFile = 1u << 2;
constexpr uint64_t kPageIsPresent = 1u << 3;
constexpr uint64_t kPageIsSwapped = 1u << 4;
constexpr uint64_t kPageIsPfnzero = 1u << 5;

struct UffdioApi {
  uint64_t api, features, ioctls;
};
struct UffdioRange {
  uint64_t start, len;
};
struct UffdioRegister {
  UffdioRange range;
  uint64_t mode, ioctls;
};
constexpr uint64_t kUffdApi = 0xAA;
constexpr uint64_t kUffdFeatureWpAsync = 1u << 15;
constexpr uint64_t kUffdRegisterModeWp = 1u << 1;
constexpr unsigned long kUffdioApi = _IOWR(0xAA, 0x3F, UffdioApi);
constexpr unsigned long kUffdioRegister = _IOWR(0xAA, 0x00, UffdioRegister);
constexpr unsigned long kUffdioUnregister = _IOR(0xAA, 0x01, UffdioRange);

// One PAGEMAP_SCAN over [start, end) of the pagemap fd, continuing until the
// whole range is walked; regions are appended to `out`. Returns -errno.
int pagemapScan(int pagemapFd, uint64_t start, uint64_t end, uint64_t flags, uint64_t categoryMask,
                uint64_t categoryInverted, uint64_t anyof, uint64_t returnMask, std::vector<PageRegion>& out);
// The UFFDIO_API handshake of a fresh userfaultfd, asking for write-protect
// in async mode (Linux 6.7).
Status uffdApiWpAsync(int uffd);

}  // namespace lxmig::tracking::kabi
