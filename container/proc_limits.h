// One resource's limits in the text of /proc/PID/limits (fs/proc/base.c: a
// header row, then one row per resource in resource order, the name padded
// to 26 columns, the soft and the hard limit, a unit). Allocates nothing and
// throws nothing: the CRIU shim (rlimit_shim.cc) runs it inside CRIU.
#pragma once

#include <cstdint>
#include <string_view>

namespace lxmig::container {

// RLIMIT_CPU ... RLIMIT_RTTIME.
inline constexpr int kProcLimitsRows = 16;

struct ProcLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;
};

namespace proc_limits_detail {

// "unlimited" (RLIM_INFINITY) or a decimal number that fits 64 bits.
inline bool parseValue(std::string_view v, uint64_t* out) noexcept {
  if (v == "unlimited") {
    *out = ~uint64_t{0};
    return true;
  }
  if (v.empty() || v.size() > 20) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (~uint64_t{0} - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

// s from pos on (substr without its exception: this code may not throw).
inline std::string_view from(std::string_view s, size_t pos) noexcept {
  return pos >= s.size() ? std::string_view() : std::string_view(s.data() + pos, s.size() - pos);
}

// The next space-separated field of s from *at, or empty at the end.
inline std::string_view nextField(std::string_view s, size_t* at) noexcept {
  while (*at < s.size() && s[*at] == ' ') ++*at;
  const size_t start = *at;
  while (*at < s.size() && s[*at] != ' ') ++*at;
  return std::string_view(s.data() + start, *at - start);
}

}  // namespace proc_limits_detail

// False when the text does not have the row, or the row is not a limits row.
inline bool parseProcLimitsRow(std::string_view text, int resource, ProcLimit* out) noexcept {
  if (resource < 0 || resource >= kProcLimitsRows) return false;
  size_t start = 0;
  for (int skip = 0; skip <= resource; ++skip) {  // the header and the rows before
    const size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) return false;
    start = nl + 1;
  }
  std::string_view row = proc_limits_detail::from(text, start);
  if (const size_t nl = row.find('\n'); nl != std::string_view::npos) row = std::string_view(row.data(), nl);
  if (row.size() < 26 || std::string_view(row.data(), 4) != "Max ") return false;
  row = proc_limits_detail::from(row, 26);
  size_t at = 0;
  ProcLimit l;
  if (!proc_limits_detail::parseValue(proc_limits_detail::nextField(row, &at), &l.soft)) return false;
  if (!proc_limits_detail::parseValue(proc_limits_detail::nextField(row, &at), &l.hard)) return false;
  *out = l;
  return true;
}

}  // namespace lxmig::container
