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
  // Written as fast as a further round would send it: another round
  // would leave as much.
  auto d = r.decide(80 * kMiB, 1024 * kMiB, 480 * kMiB, kRate, 1);
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
  r.sawRound(512 * kMiB, 101 * kMiB, 101 * kMiB);
  // 25 MiB (87 ms) within the budget, but a round of ~45 ms would leave
  // ~7 MiB: one more.
  d = r.decide(25 * kMiB, 512 * kMiB, 150 * kMiB, 1024.0 * kMiB, 2);
  EXPECT_EQ(d.stop, "");
  r.sawRound(512 * kMiB, 25 * kMiB, 25 * kMiB);
  d = r.decide(7 * kMiB, 512 * kMiB, 150 * kMiB, 1024.0 * kMiB, 3);
  EXPECT_EQ(d.stop, "converged") << "the next round would take off less than 20 ms";
}

TEST(StopRuleTest, OneMoreRoundWithinTheBudgetWhenItPays) {
  // W2: 1 GiB writing 2% of its pages a second. Round 0 took long enough
  // for 27 MiB to be written: 94 ms of frozen window, within the 300 ms
  // budget; a further round of ~90 ms leaves ~2 MiB.
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  auto d = r.decide(27 * kMiB, 1024 * kMiB, 20 * kMiB, 400.0 * kMiB, 1);
  EXPECT_EQ(d.stop, "");
  EXPECT_EQ(d.predictedDowntimeMs, 94);
  r.sawRound(1024 * kMiB, 27 * kMiB, 27 * kMiB);
  d = r.decide(2 * kMiB, 1024 * kMiB, 20 * kMiB, 400.0 * kMiB, 2);
  EXPECT_EQ(d.stop, "converged");
  EXPECT_EQ(d.predictedDowntimeMs, 7);
}

TEST(StopRuleTest, NoMoreRoundsWithinTheBudgetForASetThatDoesNotShrink) {
  // A hot set (redis): the round after it found as much written again,
  // whatever the rate over the long round 0 predicted.
  auto r = rule(1024 * kMiB);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(30 * kMiB, 1024 * kMiB, 20 * kMiB, 400.0 * kMiB, 1).stop, "");
  r.sawRound(1024 * kMiB, 30 * kMiB, 30 * kMiB);
  EXPECT_EQ(r.decide(30 * kMiB, 1024 * kMiB, 20 * kMiB, 400.0 * kMiB, 2).stop, "converged");
}

TEST(StopRuleTest, NoMoreRoundsWithinTheBudgetPastTheLimits) {
  auto r = rule(1024 * kMiB, 1);
  r.sawRound(1024 * kMiB, 1024 * kMiB, 1024 * kMiB);
  EXPECT_EQ(r.decide(27 * kMiB, 1024 * kMiB, 20 * kMiB, 400.0 * kMiB, 1).stop, "converged") << "round limit 1";
  auto t = rule(256 * kMiB);
  t.sawRound(256 * kMiB, 256 * kMiB, 800 * kMiB);
  EXPECT_EQ(t.decide(27 * kMiB, 256 * kMiB, 20 * kMiB, 400.0 * kMiB, 1).stop, "converged") << "3x the memory sent";
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
