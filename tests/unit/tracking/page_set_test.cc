#include "lxmig/tracking/page_set.h"

#include <gtest/gtest.h>

namespace lxmig::tracking {
namespace {

constexpr uint64_t P = kPageSize;

std::vector<Range> R(std::initializer_list<std::pair<uint64_t, uint64_t>> l) {
  std::vector<Range> v;
  for (auto [a, b] : l) v.push_back({a * P, b * P});
  return v;
}

TEST(PageSet, AddMergesTouchingAndOverlapping) {
  PageSet s;
  s.add(10 * P, 12 * P);
  s.add(14 * P, 16 * P);
  s.add(12 * P, 14 * P);
  EXPECT_EQ(s.ranges(), R({{10, 16}}));
  s.add(1 * P, 2 * P);
  s.add(5 * P, 11 * P);
  EXPECT_EQ(s.ranges(), R({{1, 2}, {5, 16}}));
  EXPECT_EQ(s.bytes(), 12 * P);
}

TEST(PageSet, RemoveSplits) {
  PageSet s;
  s.add(0, 10 * P);
  s.remove(3 * P, 4 * P);
  EXPECT_EQ(s.ranges(), R({{0, 3}, {4, 10}}));
  s.remove(2 * P, 6 * P);
  EXPECT_EQ(s.ranges(), R({{0, 2}, {6, 10}}));
  s.remove(0, 100 * P);
  EXPECT_TRUE(s.empty());
}

TEST(PageSet, IntersectAndContains) {
  PageSet a, b;
  a.add(0, 10 * P);
  a.add(20 * P, 30 * P);
  b.add(5 * P, 25 * P);
  a.intersect(b);
  EXPECT_EQ(a.ranges(), R({{5, 10}, {20, 25}}));
  EXPECT_TRUE(a.contains(5 * P));
  EXPECT_TRUE(a.contains(10 * P - 1));
  EXPECT_FALSE(a.contains(10 * P));
  EXPECT_FALSE(a.contains(4 * P));
}

}  // namespace
}  // namespace lxmig::tracking
