// CRIU pagemap images (criu::parsePagemap): what parses is a well-formed
// pagemap (aligned, sorted, non-overlapping entries that do not wrap the
// address space), serializes to bytes that parse back equal, and survives
// rewritePagemap with every page accounted for.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>

#include "fuzz_check.h"
#include "lxmig/criu/image.h"

namespace {

using lxmig::criu::Pagemap;
using lxmig::criu::PagemapEntry;
using lxmig::tracking::kPageSize;

// Entries as CRIU needs them; returns the total number of pages.
uint64_t checkWellFormed(const Pagemap& pm) {
  uint64_t total = 0;
  uint64_t prevEnd = 0;
  for (size_t i = 0; i < pm.entries.size(); ++i) {
    const PagemapEntry& e = pm.entries[i];
    LXMIG_FUZZ_CHECK(e.vaddr % kPageSize == 0);
    // The end of the range is representable: no wrap past 2^64.
    LXMIG_FUZZ_CHECK(e.pages <= (std::numeric_limits<uint64_t>::max() - e.vaddr) / kPageSize);
    if (i > 0) LXMIG_FUZZ_CHECK(e.vaddr >= prevEnd);
    prevEnd = e.vaddr + e.pages * kPageSize;
    total += e.pages;
  }
  return total;
}

bool samePagemap(const Pagemap& a, const Pagemap& b) {
  return a.pagesId == b.pagesId && a.entries == b.entries && a.memfdName == b.memfdName;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto pm = lxmig::criu::parsePagemap(bytes);
  if (!pm.ok()) {
    LXMIG_FUZZ_CHECK(!pm.status().message().empty());
    return 0;
  }
  checkWellFormed(*pm);
  // A memfd name is one memfd_create(2) takes.
  if (pm->memfdName)
    LXMIG_FUZZ_CHECK(pm->memfdName->size() <= lxmig::criu::kMaxMemfdName &&
                     pm->memfdName->find('\0') == std::string::npos);

  // parse -> serialize -> parse is the identity, and serializing is stable.
  const std::string wire = lxmig::criu::serializePagemap(*pm);
  auto back = lxmig::criu::parsePagemap(wire);
  LXMIG_FUZZ_CHECK(back.ok());
  LXMIG_FUZZ_CHECK(samePagemap(*pm, *back));
  LXMIG_FUZZ_CHECK(lxmig::criu::serializePagemap(*back) == wire);

  // The final-dump rewrite against a target that holds the upper half of
  // every other PRESENT entry (which ones: the pagesId's bits): each PRESENT
  // page either becomes PARENT or has its data copied, nothing else moves.
  lxmig::tracking::PageSet onTarget;
  uint64_t presentIn = 0, pagesIn = 0;
  for (size_t i = 0; i < pm->entries.size(); ++i) {
    const PagemapEntry& e = pm->entries[i];
    pagesIn += e.pages;
    if (e.flags & lxmig::criu::kPePresent) presentIn += e.pages;
    if ((pm->pagesId >> (i % 32)) & 1u)
      onTarget.add(e.vaddr + (e.pages / 2) * kPageSize, e.vaddr + e.pages * kPageSize);
  }
  const auto rw = lxmig::criu::rewritePagemap(*pm, onTarget);
  LXMIG_FUZZ_CHECK(rw.pagemap.pagesId == pm->pagesId);
  LXMIG_FUZZ_CHECK(rw.parentPages + rw.presentPages == presentIn);
  LXMIG_FUZZ_CHECK(checkWellFormed(rw.pagemap) == pagesIn);
  uint64_t copied = 0, lastEnd = 0;
  for (const auto& [off, len] : rw.copy) {
    LXMIG_FUZZ_CHECK(len > 0 && len % kPageSize == 0 && off % kPageSize == 0);
    LXMIG_FUZZ_CHECK(off >= lastEnd);  // in file order, merged when adjacent
    LXMIG_FUZZ_CHECK(copied == 0 || off > lastEnd);
    lastEnd = off + len;
    copied += len;
  }
  LXMIG_FUZZ_CHECK(copied == rw.presentPages * kPageSize);
  LXMIG_FUZZ_CHECK(lastEnd <= presentIn * kPageSize);
  uint64_t presentOut = 0;
  for (const auto& e : rw.pagemap.entries)
    if (e.flags & lxmig::criu::kPePresent) presentOut += e.pages;
  LXMIG_FUZZ_CHECK(presentOut == rw.presentPages);
  auto rewritten = lxmig::criu::parsePagemap(lxmig::criu::serializePagemap(rw.pagemap));
  LXMIG_FUZZ_CHECK(rewritten.ok() && samePagemap(*rewritten, rw.pagemap));
  return 0;
}
