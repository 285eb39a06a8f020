// What `--mode auto` picks, on its own (no processes, no agent).
#include <gtest/gtest.h>

#include "mode_model.h"

namespace lxmig::migration {
namespace {

constexpr uint64_t kMiB = 1 << 20;

FrozenSample sc(uint64_t mib, int64_t ms) { return {false, mib * kMiB, ms}; }
FrozenSample pc(uint64_t mib, int64_t ms) { return {true, mib * kMiB, ms}; }

TEST(ModeModelTest, WithoutHistoryTheDefaultsPickPreCopy) {
  const ModeModel m = ModeModel::fit({});
  EXPECT_EQ(m.stopAndCopy().samples, 0);
  EXPECT_EQ(m.preCopy().samples, 0);
  EXPECT_TRUE(m.choose(64 * kMiB, 0).preCopy);
  EXPECT_TRUE(m.choose(1024 * kMiB, 100 * kMiB).preCopy);
  // Close (568 against 580 ms): stop-and-copy needs a clear lead.
  auto tiny = m.choose(kMiB, 0);
  EXPECT_TRUE(tiny.preCopy) << tiny.why;
  EXPECT_EQ(tiny.stopAndCopyMs, 568);
  EXPECT_NE(tiny.why.find("pre-copy: predicted frozen window 580 ms against 568 ms for stop-and-copy"),
            std::string::npos)
      << tiny.why;
  EXPECT_NE(tiny.why.find("costs from: stop-and-copy defaults, pre-copy defaults"), std::string::npos) << tiny.why;
}

TEST(ModeModelTest, FitsFixedCostAndSlopeFromTheNodesMigrations) {
  // Stop-and-copy: 400 ms + 10 ms/MiB, exactly; pre-copy: 500 ms flat.
  const ModeModel m = ModeModel::fit({sc(1, 410), sc(64, 1040), sc(512, 5520), pc(1, 500), pc(2, 500)});
  EXPECT_NEAR(m.stopAndCopy().fixedMs, 400, 1e-6);
  EXPECT_NEAR(m.stopAndCopy().msPerMiB, 10, 1e-6);
  EXPECT_EQ(m.stopAndCopy().samples, 3);
  EXPECT_EQ(m.preCopy().samples, 2);
  // Two samples fit no slope: the default's, with the fixed cost from them.
  EXPECT_NEAR(m.preCopy().msPerMiB, 0.3, 1e-9);
  auto c = m.choose(4 * kMiB, 0);  // 440 against ~501: under 0.9 of it
  EXPECT_FALSE(c.preCopy) << c.why;
  EXPECT_EQ(c.stopAndCopyMs, 440);
  EXPECT_NE(c.why.find("stop-and-copy 3 of this node's migrations, pre-copy 2 of"), std::string::npos) << c.why;
  EXPECT_TRUE(m.choose(8 * kMiB, 0).preCopy);  // 480 against ~502: not a clear lead
}

TEST(ModeModelTest, TheDirtyRateCountsAgainstPreCopy) {
  // Equal fixed costs, stop-and-copy 2 ms/MiB: only the pages written in
  // the last round (a second of the rate, at most the memory) tip it.
  const ModeModel m = ModeModel::fit({sc(1, 502), sc(100, 700), sc(200, 900), pc(1, 500), pc(2, 500)});
  EXPECT_TRUE(m.choose(50 * kMiB, 0).preCopy);
  // 600 ms against 500 + 15 + 50 MiB at 3.5 ms = 690.
  const auto busy = m.choose(50 * kMiB, 50.0 * kMiB);
  EXPECT_FALSE(busy.preCopy) << busy.why;
  EXPECT_EQ(busy.stopAndCopyMs, 600);
  EXPECT_EQ(busy.preCopyMs, 690);
  EXPECT_NE(busy.why.find("dirty rate 50.0 MiB/s"), std::string::npos) << busy.why;
  // Pages written beyond the memory do not count twice.
  EXPECT_EQ(m.choose(50 * kMiB, 500.0 * kMiB).preCopyMs, 690);
}

TEST(ModeModelTest, OneSlowMigrationDoesNotMoveTheFixedCost) {
  const ModeModel m = ModeModel::fit({sc(1, 500), sc(1, 510), sc(1, 4000), sc(1, 490), sc(1, 505)});
  EXPECT_NEAR(m.stopAndCopy().fixedMs, 505 - 8.0, 1e-6) << "median residual, default slope";
}

TEST(ModeModelTest, KeepsOnlyTheNewestSamplesAndIgnoresUnusableOnes) {
  std::vector<FrozenSample> s(ModeModel::kMaxSamples, sc(1, 300));
  for (int i = 0; i < 40; ++i) s.push_back(sc(1, 900));  // older
  s.push_back(sc(1, 0));                                 // no downtime recorded
  const ModeModel m = ModeModel::fit(s);
  EXPECT_EQ(m.stopAndCopy().samples, static_cast<int>(ModeModel::kMaxSamples));
  EXPECT_NEAR(m.stopAndCopy().fixedMs, 300 - 8.0, 1e-6);
}

TEST(ModeModelTest, ANegativeSlopeOrFixedCostIsClamped) {
  const ModeModel m = ModeModel::fit({sc(1, 900), sc(100, 500), sc(200, 100)});
  EXPECT_EQ(m.stopAndCopy().msPerMiB, 0);
  EXPECT_GE(m.stopAndCopy().fixedMs, 0);
}

}  // namespace
}  // namespace lxmig::migration
