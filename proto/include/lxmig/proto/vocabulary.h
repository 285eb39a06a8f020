// The words of a migration, in one place: each value of the proto enums
// (lxmig/v1/migration.proto) has one name, used in the audit database, in
// JSON and on screen; and the defaults of a migration request.
//
//   v1::MigrationResult r = v1::RESULT_COMMITTED;
//   std::string_view s = name(r);                // "committed"
//   v1::MigrationMode m;
//   if (!parse("pre-copy", &m)) ...              // MODE_PRE_COPY
//
// A name is the value's identifier without its prefix, in lower case, with
// '-' for '_': MODE_STOP_AND_COPY is "stop-and-copy", PHASE_FINAL_SCAN is
// "final-scan", TRACKER_UFFD_WP is "uffd-wp". The audit stores names, so a
// name never changes once released; a new value gets a new name.
#pragma once

#include <cstdint>
#include <string_view>

#include "lxmig/v1/migration.pb.h"

namespace lxmig {

// Pre-copy stops when the rest fits this frozen window (--max-downtime).
inline constexpr int64_t kDefaultMaxDowntimeMs = 300;
// Pre-copy rounds at most (--max-rounds).
inline constexpr int kDefaultMaxRounds = 10;
// A target's CRIU restore (--restore-timeout): by default 60 s plus 1 s per
// 32 MiB the migration sent; a target bounds what it is asked to this range.
inline constexpr int64_t kRestoreBaseTimeoutMs = 60 * 1000;
inline constexpr uint64_t kRestoreBytesPerSecond = uint64_t{32} << 20;
inline constexpr int64_t kMinRestoreTimeoutMs = 1000;
inline constexpr int64_t kMaxRestoreTimeoutMs = 4 * 3600 * 1000;

std::string_view name(v1::MigrationMode v);
std::string_view name(v1::Tracker v);
std::string_view name(v1::MigrationResult v);
std::string_view name(v1::Phase v);
std::string_view name(v1::PhaseResult v);

// False for a name no value has (the output is left alone).
bool parse(std::string_view s, v1::MigrationMode* out);
bool parse(std::string_view s, v1::Tracker* out);
bool parse(std::string_view s, v1::MigrationResult* out);
bool parse(std::string_view s, v1::Phase* out);
bool parse(std::string_view s, v1::PhaseResult* out);

}  // namespace lxmig
