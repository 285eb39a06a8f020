#include "mode_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lxmig::migration {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// Measured on the reference machine (docs/benchmarks.md, 2026-12-05): the
// floor and W1-W4 of bench_precopy, both modes. A node's own migrations
// replace them as they accumulate.
constexpr ModeModel::Line kStopAndCopyDefault{560, 8.0, 0};
constexpr ModeModel::Line kPreCopyDefault{580, 0.3, 0};
// A slope is fitted only over samples this far apart (MiB); closer, the
// noise of the fixed cost (tens of ms) would be read as a slope.
constexpr double kMinSpreadMiB = 16;
constexpr double kMaxMsPerMiB = 50;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

ModeModel::Line fitLine(const std::vector<FrozenSample>& newestFirst, bool preCopy, ModeModel::Line line) {
  std::vector<double> xs, ys;
  for (const FrozenSample& s : newestFirst) {
    if (s.preCopy != preCopy || s.downtimeMs <= 0) continue;
    xs.push_back(static_cast<double>(s.memoryBytes) / kMiB);
    ys.push_back(static_cast<double>(s.downtimeMs));
    if (xs.size() == ModeModel::kMaxSamples) break;
  }
  if (xs.empty()) return line;
  const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
  if (xs.size() >= 3 && *hi - *lo >= kMinSpreadMiB) {
    double mx = 0, my = 0;
    for (size_t i = 0; i < xs.size(); ++i) mx += xs[i], my += ys[i];
    mx /= static_cast<double>(xs.size());
    my /= static_cast<double>(ys.size());
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < xs.size(); ++i) sxy += (xs[i] - mx) * (ys[i] - my), sxx += (xs[i] - mx) * (xs[i] - mx);
    line.msPerMiB = std::clamp(sxy / sxx, 0.0, kMaxMsPerMiB);
  }
  // The fixed cost as the median residual: one slow migration (a busy
  // node) does not move it.
  std::vector<double> fixed;
  for (size_t i = 0; i < xs.size(); ++i) fixed.push_back(ys[i] - line.msPerMiB * xs[i]);
  line.fixedMs = std::max(0.0, median(fixed));
  line.samples = static_cast<int>(xs.size());
  return line;
}

std::string source(const ModeModel::Line& l) {
  return l.samples ? std::to_string(l.samples) + " of this node's migrations" : "defaults";
}

}  // namespace

ModeModel ModeModel::fit(const std::vector<FrozenSample>& newestFirst) {
  ModeModel m;
  m.sc_ = fitLine(newestFirst, false, kStopAndCopyDefault);
  m.pc_ = fitLine(newestFirst, true, kPreCopyDefault);
  return m;
}

ModeModel::Choice ModeModel::choose(uint64_t memoryBytes, double dirtyRateBps) const {
  const double mib = static_cast<double>(memoryBytes) / kMiB;
  const double lastRoundMiB = std::min(mib, std::max(0.0, dirtyRateBps) * kLastRoundSeconds / kMiB);
  Choice c;
  c.stopAndCopyMs = std::llround(sc_.fixedMs + sc_.msPerMiB * mib);
  c.preCopyMs = std::llround(pc_.fixedMs + pc_.msPerMiB * mib + StopRule::kFrozenMsPerMiB * lastRoundMiB);
  c.preCopy = static_cast<double>(c.stopAndCopyMs) > kStopAndCopyAt * static_cast<double>(c.preCopyMs);
  char memory[32], rate[48];
  std::snprintf(memory, sizeof memory, "%.1f MiB", mib);
  if (dirtyRateBps > 0) std::snprintf(rate, sizeof rate, "dirty rate %.1f MiB/s", dirtyRateBps / kMiB);
  else std::snprintf(rate, sizeof rate, "dirty rate not measured yet");
  c.why = std::string(c.preCopy ? "pre-copy" : "stop-and-copy") + ": predicted frozen window " +
          std::to_string(c.preCopy ? c.preCopyMs : c.stopAndCopyMs) + " ms against " +
          std::to_string(c.preCopy ? c.stopAndCopyMs : c.preCopyMs) + " ms for " +
          (c.preCopy ? "stop-and-copy" : "pre-copy") + " (" + memory + ", " + rate + "; costs from: stop-and-copy " +
          source(sc_) + ", pre-copy " + source(pc_) + ")";
  return c;
}

}  // namespace lxmig::migration
