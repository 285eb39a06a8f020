#include "lxmig/criu/held_pages.h"

#include <gtest/gtest.h>

#include <cstring>

namespace lxmig::criu {
namespace {

using tracking::PageSet;
constexpr uint64_t P = tracking::kPageSize;

template <typename T>
T at(const std::string& b, size_t off) {
  T v{};
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

TEST(HeldPages, LaysOutProcessesAndRangesAsThePatchedCriuReadsThem) {
  PageSet a, b;
  a.add(0x400000, 0x400000 + 3 * P);
  a.add(0x800000, 0x800000 + P);
  b.add(0x10000, 0x10000 + 2 * P);
  const std::string f = serializeHeldPages({{1, a}, {42, b}});
  ASSERT_EQ(f.size(), 16u + (16 + 2 * 16) + (16 + 16));
  EXPECT_EQ(f.substr(0, 8), "LXMIGHL2");
  EXPECT_EQ(at<uint32_t>(f, 8), 2u);
  EXPECT_EQ(at<uint32_t>(f, 12), 0u);  // no shared memory object named
  EXPECT_EQ(at<uint32_t>(f, 16), 1u);
  EXPECT_EQ(at<uint64_t>(f, 24), 2u);
  EXPECT_EQ(at<uint64_t>(f, 32), 0x400000u);
  EXPECT_EQ(at<uint64_t>(f, 40), 0x400000u + 3 * P);
  EXPECT_EQ(at<uint64_t>(f, 48), 0x800000u);
  EXPECT_EQ(at<uint64_t>(f, 56), 0x800000u + P);
  EXPECT_EQ(at<uint32_t>(f, 64), 42u);
  EXPECT_EQ(at<uint64_t>(f, 72), 1u);
  EXPECT_EQ(at<uint64_t>(f, 80), 0x10000u);
  EXPECT_EQ(at<uint64_t>(f, 88), 0x10000u + 2 * P);
}

TEST(HeldPages, CutsRangesToWholePagesAndLeavesOutWhatIsEmpty) {
  PageSet partial, none, tiny;
  partial.add(0x1000 + 100, 0x4000 + 5);  // whole pages 0x2000..0x4000 only
  tiny.add(0x5000 + 1, 0x5000 + 200);     // no whole page
  const std::string f = serializeHeldPages({{7, partial}, {8, none}, {9, tiny}});
  ASSERT_EQ(f.size(), 16u + 16 + 16);
  EXPECT_EQ(at<uint32_t>(f, 8), 1u);
  EXPECT_EQ(at<uint32_t>(f, 16), 7u);
  EXPECT_EQ(at<uint64_t>(f, 24), 1u);
  EXPECT_EQ(at<uint64_t>(f, 32), 0x2000u);
  EXPECT_EQ(at<uint64_t>(f, 40), 0x4000u);
}

TEST(HeldPages, NamesTheSharedMemoryObjectsTheRewriteRebuildsAfterTheProcesses) {
  PageSet a;
  a.add(0x400000, 0x400000 + P);
  const std::string f = serializeHeldPages({{1, a}}, {77, 0x123456789});
  ASSERT_EQ(f.size(), 16u + (16 + 16) + 2 * 8);
  EXPECT_EQ(at<uint32_t>(f, 8), 1u);
  EXPECT_EQ(at<uint32_t>(f, 12), 2u);
  EXPECT_EQ(at<uint64_t>(f, 48), 77u);
  EXPECT_EQ(at<uint64_t>(f, 56), 0x123456789u);
}

TEST(HeldPages, NothingHeldIsAValidEmptyFile) {
  const std::string f = serializeHeldPages({});
  ASSERT_EQ(f.size(), 16u);
  EXPECT_EQ(f.substr(0, 8), "LXMIGHL2");
  EXPECT_EQ(at<uint32_t>(f, 8), 0u);
  EXPECT_EQ(at<uint32_t>(f, 12), 0u);
}

}  // namespace
}  // namespace lxmig::criu
