#include "lxmig/criu/image.h"

#include <gtest/gtest.h>

namespace lxmig::criu {

using tracking::kPageSize;
using tracking::PageSet;
using tracking::Range;
namespace {

constexpr uint64_t P = kPageSize;

TEST(CriuImage, RoundTrip) {
  Pagemap pm;
  pm.pagesId = 7;
  pm.entries = {{0x400000, 3, kPePresent | kPeLazy}, {0x800000, 2, kPeParent}};
  auto back = parsePagemap(serializePagemap(pm));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->pagesId, 7u);
  EXPECT_EQ(back->entries, pm.entries);
}

TEST(CriuImage, RejectsGarbage) {
  EXPECT_FALSE(parsePagemap("short").ok());
  std::string bad = serializePagemap(Pagemap{1, {{0x1000, 1, kPePresent}}});
  bad[0] ^= 1;
  EXPECT_FALSE(parsePagemap(bad).ok());
  std::string cut = serializePagemap(Pagemap{1, {{0x1000, 1, kPePresent}}});
  cut.resize(cut.size() - 2);
  EXPECT_FALSE(parsePagemap(cut).ok());
  // Unsorted entries would make CRIU read the wrong pages.
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{0x5000, 1, kPePresent}, {0x1000, 1, kPePresent}}})).ok());
  // An entry whose end wraps around 2^64 (found by the fuzzer: the next
  // entry's order check then compared against the wrapped end).
  EXPECT_FALSE(
      parsePagemap(serializePagemap(Pagemap{1, {{0x1000, uint64_t{1} << 52, kPePresent}, {0x2000, 1, kPePresent}}}))
          .ok());
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{kAddressSpaceEnd, 1, kPePresent}}})).ok());
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{0x1000, 0, kPePresent}}})).ok()) << "an empty entry";
}

TEST(CriuImage, RoundPagemapSplitsPresentAndParent) {
  PageSet valid, sent;
  valid.add(0, 10 * P);
  valid.add(20 * P, 22 * P);
  sent.add(2 * P, 4 * P);
  sent.add(20 * P, 22 * P);
  Pagemap pm = roundPagemap(5, valid, sent);
  std::vector<PagemapEntry> want = {
      {0, 2, kPeParent}, {2 * P, 2, kPePresent}, {4 * P, 6, kPeParent}, {20 * P, 2, kPePresent}};
  EXPECT_EQ(pm.entries, want);
}

TEST(CriuImage, RewriteKeepsOnlyPagesTheTargetLacks) {
  Pagemap in;
  in.pagesId = 3;
  // 4 lazy pages at 0, 2 pages at 16P (not lazy), 1 page already in parent.
  in.entries = {{0, 4, kPePresent | kPeLazy}, {16 * P, 2, kPePresent}, {30 * P, 1, kPeParent}};
  PageSet onTarget;
  onTarget.add(1 * P, 3 * P);    // pages 1,2 of the first entry
  onTarget.add(16 * P, 18 * P);  // the whole second entry
  PagemapRewrite rw = rewritePagemap(in, onTarget);
  std::vector<PagemapEntry> want = {{0, 1, kPePresent | kPeLazy},
                                    {1 * P, 2, kPeParent | kPeLazy},
                                    {3 * P, 1, kPePresent | kPeLazy},
                                    {16 * P, 2, kPeParent},
                                    {30 * P, 1, kPeParent}};
  EXPECT_EQ(rw.pagemap.entries, want);
  // Data of pages 0 and 3 of the old file travel: offsets 0 and 3P.
  std::vector<std::pair<uint64_t, uint64_t>> copy = {{0, P}, {3 * P, P}};
  EXPECT_EQ(rw.copy, copy);
  EXPECT_EQ(rw.parentPages, 4u);
  EXPECT_EQ(rw.presentPages, 2u);
}

}  // namespace
}  // namespace lxmig::criu
