#include "output/progress.h"

#include <cstdio>

#include "lxmig/base/files.h"
#include "lxmig/proto/vocabulary.h"
#include "output/table.h"

namespace lxmig::cli {

std::string progressLine(const v1::Progress& p) {
  std::string line = "[" + std::string(name(p.phase())) + "] ";
  if (p.phase() == v1::PHASE_PRECOPY) {
    if (p.round() == 0) line += "round 0 (all " + humanBytes(p.dirty_bytes()) + " present); ";
    else
      line += "round " + std::to_string(p.round()) + ", dirty " + humanBytes(p.dirty_bytes()) +
              ", predicted downtime " + std::to_string(p.predicted_downtime_ms()) + " ms; ";
  }
  line += humanBytes(p.bytes_done());
  if (p.bytes_total()) line += " / " + humanBytes(p.bytes_total());
  if (p.rate_bps() > 0) {
    line += "  " + formatRate(p.rate_bps());
    if (p.bytes_total() > p.bytes_done()) {
      char eta[32];
      std::snprintf(eta, sizeof eta, "  ETA %.1fs",
                    static_cast<double>(p.bytes_total() - p.bytes_done()) / p.rate_bps());
      line += eta;
    }
  }
  return line;
}

std::string stepProgressLine(const v1::Progress& p) {
  const std::string text =
      p.bytes_done() > 0 ? progressLine(p)
                         : "[" + std::string(name(p.phase())) + "]" +
                               (p.bytes_total() ? " " + humanBytes(p.bytes_total()) + " of images" : std::string());
  return p.container() + " " + text;
}

StepProgressLine::~StepProgressLine() {
  if (shown_) std::fprintf(stderr, "\r\033[K");
}

void StepProgressLine::operator()(const v1::Progress& p) {
  if (!show_) return;
  std::fprintf(stderr, "\r\033[K%s", stepProgressLine(p).c_str());
  shown_ = true;
}

}  // namespace lxmig::cli
