// The pre-copy loop's stop rule on its own (no processes, no agent).
#include <gtest/gtest.h>

#include "stop_rule.h"

namespace lxmig::migration {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr double kRate = 500.0 * kMiB;  // send rate, bytes per second

StopRule rule(uint64_t memory, int maxRounds = 10) { return StopRule({300, maxRounds, memory}); }

TEST(StopRuleTest, ConvergesWhenTheDirtySetFitsTheBudget) {
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  auto d = r.decide(80 * kMiB, 1024 * kMiB, 20 * kMiB, kRate, 1);
  EXPECT_EQ(d.stop, "converged");
  EXPECT_EQ(d.predictedDowntimeMs, 280) << "80 MiB at the frozen window's 3.5 ms a MiB";
  d = r.decide(200 * kMiB, 1024 * kMiB, 20 * kMiB, 100.0 * kMiB, 1);
  EXPECT_EQ(d.stop, "");
  EXPECT_EQ(d.predictedDowntimeMs, 2000) << "a link slower than the window's own cost decides";
}

TEST(StopRuleTest, AFastLinkDoesNotHideTheWindowsOwnCost) {
  // redis under load: ~100 MiB written during round 0, a link of 1 GiB/s.
  // On the link alone ~100 ms, well within the budget; through the frozen
  // window (read back, sent, laid out on the target) ~350: one more round.
  auto r = rule(512 * kMiB);
  r.sawRound(512 * kMiB, 512 * kMiB, 512 * kMiB);
  auto d = r.decide(101 * kMiB, 512 * kMiB, 150 * kMiB, 1024.0 * kMiB, 1);
  EXPECT_EQ(d.stop, "");
  EXPECT_EQ(d.predictedDowntimeMs, 353);
  d = r.decide(25 * kMiB, 512 * kMiB, 150 * kMiB, 1024.0 * kMiB, 2);
  EXPECT_EQ(d.stop, "converged");
}

TEST(StopRuleTest, StopsAtTheRoundLimit) {
  auto r = rule(1024 * kMiB, 2);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(400 * kMiB, 1024 * kMiB, 50 * kMiB, kRate, 1).stop, "");
  r.sawRound(1024 * kMiB, 400 * kMiB, 400 * kMiB);
  EXPECT_EQ(r.decide(300 * kMiB, 1024 * kMiB, 50 * kMiB, kRate, 2).stop, "round limit");
}

TEST(StopRuleTest, StopsAfterSendingThreeTimesTheMemory) {
  auto r = rule(256 * kMiB);
  r.sawRound(256 * kMiB, 256 * kMiB, 256 * kMiB);
  r.sawRound(256 * kMiB, 250 * kMiB, 250 * kMiB);
  EXPECT_EQ(r.decide(240 * kMiB, 256 * kMiB, 10 * kMiB, kRate, 2).stop, "") << "506 MiB sent of 768";
  r.sawRound(256 * kMiB, 240 * kMiB, 262 * kMiB);
  EXPECT_EQ(r.decide(200 * kMiB, 256 * kMiB, 10 * kMiB, kRate, 3).stop, "sent 3x the memory");
}

TEST(StopRuleTest, StopsWhenTheDirtyRateStaysAtTheSendRate) {
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(500 * kMiB, 1024 * kMiB, 600 * kMiB, kRate, 1).stop, "");
  r.sawRound(1024 * kMiB, 500 * kMiB, 500 * kMiB);
  EXPECT_EQ(r.decide(300 * kMiB, 1024 * kMiB, 500 * kMiB, kRate, 2).stop, "not converging (dirty rate >= send rate)");
}

// A workload still filling its memory when the loop began: its memory at
// the start is small, but what it holds now counts (seen here: a 1 GiB
// workload stopped after one round with "sent 3x the memory" and a 228 MiB
// frozen-window delta).
TEST(StopRuleTest, ThreeTimesFollowsAGrowingWorkload) {
  auto r = rule(300 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.memoryBytes(), 1024 * kMiB);
  auto d = r.decide(228 * kMiB, 1024 * kMiB, 120 * kMiB, kRate, 1);
  EXPECT_EQ(d.stop, "") << "one round sent 1x of what the workload holds";
  EXPECT_EQ(d.predictedDowntimeMs, 798);
  // Growth seen in a later scan raises the bound too.
  auto g = rule(100 * kMiB);
  g.sawRound(200 * kMiB, 200 * kMiB, 200 * kMiB);
  g.sawRound(200 * kMiB, 150 * kMiB, 150 * kMiB);
  EXPECT_EQ(g.decide(180 * kMiB, 900 * kMiB, 100 * kMiB, kRate, 2).stop, "");
  EXPECT_EQ(g.memoryBytes(), 900 * kMiB);
}

TEST(StopRuleTest, StopsWhenTheDirtySetNoLongerShrinks) {
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(400 * kMiB, 1024 * kMiB, 100 * kMiB, kRate, 1).stop, "");
  r.sawRound(1024 * kMiB, 400 * kMiB, 400 * kMiB);
  EXPECT_EQ(r.decide(380 * kMiB, 1024 * kMiB, 100 * kMiB, kRate, 2).stop, "");
  r.sawRound(1024 * kMiB, 380 * kMiB, 380 * kMiB);
  EXPECT_EQ(r.decide(370 * kMiB, 1024 * kMiB, 100 * kMiB, kRate, 3).stop,
            "not converging (dirty set stopped shrinking)");
}

TEST(StopRuleTest, AShrinkingRoundResetsTheCount) {
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(1000 * kMiB, 1024 * kMiB, 600 * kMiB, kRate, 1).stop, "");  // not shrinking, too fast (1)
  r.sawRound(1024 * kMiB, 1000 * kMiB, 1000 * kMiB);
  EXPECT_EQ(r.decide(500 * kMiB, 1024 * kMiB, 100 * kMiB, kRate, 2).stop, "");  // shrank, slower: both reset
  r.sawRound(1024 * kMiB, 500 * kMiB, 500 * kMiB);
  EXPECT_EQ(r.decide(480 * kMiB, 1024 * kMiB, 100 * kMiB, kRate, 3).stop, "");  // not shrinking (1)
}

}  // namespace
}  // namespace lxmig::migration
