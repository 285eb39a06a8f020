#include "stop_rule.h"

namespace lxmig::migration {

void StopRule::sawRound(uint64_t footprintBytes, uint64_t dirtyBytes, uint64_t sentBytes) {
  maxFootprint_ = std::max(maxFootprint_, footprintBytes);
  lastDirty_ = dirtyBytes;
  totalSent_ += sentBytes;
}

int64_t StopRule::frozenMs(double dirtyBytes, double sendRateBps) {
  // The dirty pages' share of the frozen window: their time on the link,
  // and never less than their cost per MiB in the window.
  const double onLink = sendRateBps > 0 ? dirtyBytes * 1000 / sendRateBps : 0;
  return static_cast<int64_t>(std::max(onLink, dirtyBytes / (1 << 20) * kFrozenMsPerMiB));
}

StopRule::Decision StopRule::decide(uint64_t dirtyBytes, uint64_t footprintBytes, double dirtyRateBps,
                                    double sendRateBps, int round) {
  maxFootprint_ = std::max(maxFootprint_, footprintBytes);
  Decision d;
  const double dirty = static_cast<double>(dirtyBytes);
  d.predictedDowntimeMs = frozenMs(dirty, sendRateBps);
  const uint64_t mem = memoryBytes();
  const bool budgetLeft = round < limits_.maxRounds && (mem == 0 || totalSent_ < 3 * mem);
  if (d.predictedDowntimeMs <= limits_.maxDowntimeMs) {
    d.stop = "converged";
    // Within the budget, one more round still pays when it leaves clearly
    // less to the frozen window: it lasts about its send time, in which
    // the writers dirty about their rate times that again. Only while the
    // dirty set shrinks (a hot set that does not is all the window gets).
    const bool shrinking = lastDirty_ == 0 || dirtyBytes < lastDirty_;
    if (budgetLeft && shrinking && sendRateBps > 0) {
      const double seconds = dirty / sendRateBps + kRoundOverheadMs / 1000.0;
      const double next = std::min(dirty, std::max(0.0, dirtyRateBps) * seconds);
      if (static_cast<double>(d.predictedDowntimeMs - frozenMs(next, sendRateBps)) >= kWorthMs) d.stop = "";
    }
  } else if (round >= limits_.maxRounds) d.stop = "round limit";
  else if (mem > 0 && totalSent_ >= 3 * mem) d.stop = "sent 3x the memory";
  else {
    notConverging_ = dirtyRateBps >= sendRateBps ? notConverging_ + 1 : 0;
    // A dirty set that no longer shrinks is the same verdict reached
    // sooner: the rate only matches the send rate once rounds stop
    // shortening (seen with 50%/s writers: ten rounds of ~200 MB).
    notShrinking_ = lastDirty_ > 0 && dirtyBytes * 10 >= lastDirty_ * 9 ? notShrinking_ + 1 : 0;
    if (notConverging_ >= 2) d.stop = "not converging (dirty rate >= send rate)";
    else if (notShrinking_ >= 2) d.stop = "not converging (dirty set stopped shrinking)";
  }
  return d;
}

}  // namespace lxmig::migration
