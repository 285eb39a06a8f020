#include "stop_rule.h"

namespace lxmig::migration {

void StopRule::sawRound(uint64_t footprintBytes, uint64_t dirtyBytes, uint64_t sentBytes) {
  maxFootprint_ = std::max(maxFootprint_, footprintBytes);
  lastDirty_ = dirtyBytes;
  totalSent_ += sentBytes;
}

StopRule::Decision StopRule::decide(uint64_t dirtyBytes, uint64_t footprintBytes, double dirtyRateBps,
                                    double sendRateBps, int round) {
  maxFootprint_ = std::max(maxFootprint_, footprintBytes);
  Decision d;
  const double dirty = static_cast<double>(dirtyBytes);
  // The dirty pages' share of the frozen window: their time on the link,
  // and never less than their cost per MiB in the window.
  const double onLink = sendRateBps > 0 ? dirty * 1000 / sendRateBps : 0;
  d.predictedDowntimeMs = static_cast<int64_t>(std::max(onLink, dirty / (1 << 20) * kFrozenMsPerMiB));
  const uint64_t mem = memoryBytes();
  if (d.predictedDowntimeMs <= limits_.maxDowntimeMs) d.stop = "converged";
  else if (round >= limits_.maxRounds) d.stop = "round limit";
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
