// When pre-copy stops sending rounds and freezes (DESIGN.md, "A migration",
// step 3).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "lxmig/proto/vocabulary.h"

namespace lxmig::migration {

// The loop's stop rule (DESIGN.md step 3), decided on each later round's
// fresh dirty set; pure, so it is unit-tested on its own.
//
//   StopRule rule({300, 10, memoryBytes});
//   rule.sawRound(presentBytes, 0, sentBytes);           // round 0
//   auto d = rule.decide(dirtyBytes, footprint, dirtyRate, sendRate, 1);
class StopRule {
 public:
  struct Limits {
    int64_t maxDowntimeMs = kDefaultMaxDowntimeMs;
    int maxRounds = kDefaultMaxRounds;
    uint64_t memoryBytes = 0;  // the container's memory when the loop began
  };
  struct Decision {
    std::string stop;  // "" = go on
    int64_t predictedDowntimeMs = 0;
  };
  // What a MiB of pages costs in the frozen window besides the link: read
  // from the frozen processes into the dump's page files, sent, laid into
  // the target's page store (measured: ~3.5 ms here; W4's 101 MiB delta
  // took 379 ms, where its send rate alone predicted 100).
  static constexpr double kFrozenMsPerMiB = 3.5;
  // A dirty set within the budget gets one more round when that round is
  // predicted to take at least kWorthMs off the frozen window; a round
  // costs its send time plus kRoundOverheadMs (its scan and set-up).
  static constexpr double kWorthMs = 20;
  static constexpr double kRoundOverheadMs = 20;
  explicit StopRule(Limits l) : limits_(l) {}
  // Round `round` (0 first) found `dirtyBytes` to send while the processes
  // held `footprintBytes` of memory worth sending (round 0: every present
  // page); `sentBytes` is what the round then sent.
  void sawRound(uint64_t footprintBytes, uint64_t dirtyBytes, uint64_t sentBytes);
  // For round >= 1, after its scan.
  Decision decide(uint64_t dirtyBytes, uint64_t footprintBytes, double dirtyRateBps, double sendRateBps, int round);
  // The memory the 3x rule measures against: the largest of the
  // container's memory at the start and every footprint seen since (a
  // workload still growing must not stop the loop after one round).
  uint64_t memoryBytes() const { return std::max(limits_.memoryBytes, maxFootprint_); }
  // The share of the frozen window `dirtyBytes` would take, in ms.
  static int64_t frozenMs(double dirtyBytes, double sendRateBps);

 private:
  Limits limits_;
  uint64_t totalSent_ = 0;
  uint64_t maxFootprint_ = 0;
  uint64_t lastDirty_ = 0;
  int notConverging_ = 0;
  int notShrinking_ = 0;
};

}  // namespace lxmig::migration
