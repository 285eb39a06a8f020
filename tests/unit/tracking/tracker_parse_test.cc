#include <gtest/gtest.h>

#include "lxmig/tracking/dirty_tracker.h"

namespace lxmig::tracking {
namespace {

TEST(Maps, ParsesAndSelectsPrivateAnonymousWritable) {
  const char* text =
      "55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]\n"
      "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 \n"
      "7f0000100000-7f0000200000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)\n"
      "7f0000200000-7f0000201000 rw-p 00003000 08:01 99                         /usr/lib/libc.so.6\n"
      "7f0000300000-7f0000301000 r--p 00000000 00:00 0 \n"
      "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]\n"
      "7ffc00100000-7ffc00102000 r--p 00000000 00:00 0                          [vvar]\n"
      "7ffc00200000-7ffc00201000 rw-p 00000000 00:00 0                          [anon:my pool]\n";
  auto maps = parseMaps(text);
  ASSERT_EQ(maps.size(), 8u);
  EXPECT_EQ(maps[0].range.start, 0x55d0c0000000u);
  EXPECT_EQ(maps[0].range.end, 0x55d0c0021000u);
  EXPECT_EQ(maps[2].path, "/dev/zero (deleted)");
  EXPECT_EQ(maps[7].path, "[anon:my pool]");
  std::vector<bool> want = {true, true, false, false, false, true, false, true};
  for (size_t i = 0; i < maps.size(); ++i) EXPECT_EQ(trackable(maps[i]), want[i]) << i;
}

TEST(SoftDirty, DecodesPagemapWords) {
  constexpr uint64_t present = 1ull << 63, swapped = 1ull << 62, sd = 1ull << 55;
  uint64_t words[] = {present | sd | 1234, present, 0, swapped | sd, sd};
  PageSet p, d;
  decodePagemapWords(words, 5, 0x10000, p, d);
  EXPECT_EQ(p.ranges(), (std::vector<Range>{{0x10000, 0x12000}, {0x13000, 0x14000}}));
  EXPECT_EQ(d.ranges(), (std::vector<Range>{{0x10000, 0x11000}, {0x13000, 0x15000}}));
}

}  // namespace
}  // namespace lxmig::tracking
