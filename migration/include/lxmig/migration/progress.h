// Progress events for the operator's terminal, from a migration (Source)
// or a step of one node (adopt, merge): phase, bytes, rate.
#pragma once

#include <functional>

#include "lxmig/v1/migration.pb.h"

namespace lxmig::migration {

using ProgressFn = std::function<void(const v1::Progress&)>;

}  // namespace lxmig::migration
