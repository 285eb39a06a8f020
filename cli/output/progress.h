// The line `lxmig migrate` keeps rewriting on a terminal while a migration
// runs: phase, pre-copy round, bytes, rate and time left.
#pragma once

#include <string>

#include "lxmig/v1/migration.pb.h"

namespace lxmig::cli {

// "[precopy] round 2, dirty 1.0 MiB, predicted downtime 40 ms; 3.0 MiB / 8.0 MiB  1.0 MiB/s  ETA 5.0s"
std::string progressLine(const v1::Progress& p);

// A step's line (lxmig adopt, merge): "producer [dump] 4.8 MiB  96.0 MiB/s";
// a phase that counts no bytes shows its name and the images' size:
// "producer [restore] 4.8 MiB of images".
std::string stepProgressLine(const v1::Progress& p);

// That line on stderr, kept rewritten, while `show` (a terminal, neither
// --quiet nor --json); its destructor clears the line.
class StepProgressLine {
 public:
  explicit StepProgressLine(bool show) : show_(show) {}
  ~StepProgressLine();
  StepProgressLine(const StepProgressLine&) = delete;
  StepProgressLine& operator=(const StepProgressLine&) = delete;
  void operator()(const v1::Progress& p);

 private:
  bool show_, shown_ = false;
};

}  // namespace lxmig::cli
