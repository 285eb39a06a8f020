// The line `lxmig migrate` keeps rewriting on a terminal while a migration
// runs: phase, pre-copy round, bytes, rate and time left.
#pragma once

#include <string>

#include "lxmig/v1/migration.pb.h"

namespace lxmig::cli {

// "[precopy] round 2, dirty 1.0 MiB, predicted downtime 40 ms; 3.0 MiB / 8.0 MiB  1.0 MiB/s  ETA 5.0s"
std::string progressLine(const v1::Progress& p);

}  // namespace lxmig::cli
