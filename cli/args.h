// Values of verb arguments that CLI11 cannot check alone: durations and
// bind mounts. Errors are InvalidArgument, quoting what was given.
//
//   Result<int64_t> ms = parseDurationMs("0.5s");      // 500
//   Result<v1::BindMount> b = parseBind("/srv:/data:rw");
#pragma once

#include <cstdint>
#include <string>

#include "lxmig/base/status.h"
#include "lxmig/v1/migration.pb.h"

namespace lxmig::cli {

// "300ms", "0.5s", "2s" or plain milliseconds; not negative.
Result<int64_t> parseDurationMs(const std::string& s);

// A look back: DIGITS followed by m, h, d or w ("90m", "24h", "7d", "2w"),
// at most ten years; returns milliseconds.
Result<int64_t> parseSinceMs(const std::string& s);

// --bind HOST[:CONTAINER][:rw]: CONTAINER defaults to HOST, read-only
// unless the third part is "rw".
Result<v1::BindMount> parseBind(const std::string& s);

}  // namespace lxmig::cli
