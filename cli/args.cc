#include "args.h"

#include "lxmig/base/grammar.h"

#include <cctype>

#include <cstdlib>

#include "lxmig/base/files.h"

namespace lxmig::cli {

Result<int64_t> parseDurationMs(const std::string& s) {
  // DIGITS[.DIGITS][ms|s], at most a day: strtod alone would take "nan",
  // "inf", "1e400" and leading blanks, and a cast of those is undefined.
  const Status bad = invalidArgument("bad duration " + quote(s) + " (e.g. 300ms or 0.5s, at most 24h)");
  size_t i = 0;
  uint64_t whole = 0, frac = 0, scale = 1;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && whole <= 86400000)
    whole = whole * 10 + static_cast<uint64_t>(s[i++] - '0');
  if (i == 0) return bad;
  if (i < s.size() && s[i] == '.') {
    const size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (scale < 1000000) {
        frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
        scale *= 10;
      }
      ++i;
    }
    if (i == start) return bad;
  }
  const std::string unit = s.substr(i);
  uint64_t ms;
  if (unit.empty() || unit == "ms") ms = whole;
  else if (unit == "s") ms = whole * 1000 + frac * 1000 / scale;
  else return bad;
  if (whole > 86400000 || ms > 86400000) return bad;
  return static_cast<int64_t>(ms);
}

Result<int64_t> parseSinceMs(const std::string& s) {
  const Status bad = invalidArgument("bad duration " + quote(s) + " (e.g. 90m, 24h, 7d, 2w; at most 3650d)");
  constexpr int64_t kMaxMs = int64_t{3650} * 86400 * 1000;
  size_t i = 0;
  int64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && n <= kMaxMs) n = n * 10 + (s[i++] - '0');
  if (i == 0 || i + 1 != s.size()) return bad;
  int64_t unit = 0;
  switch (s[i]) {
    case 'm':
      unit = 60 * 1000;
      break;
    case 'h':
      unit = 3600 * 1000;
      break;
    case 'd':
      unit = 86400 * 1000;
      break;
    case 'w':
      unit = 7 * 86400 * 1000;
      break;
    default:
      return bad;
  }
  if (n > kMaxMs / unit) return bad;
  return n * unit;
}

Result<v1::BindMount> parseBind(const std::string& s) {
  auto parts = split(s, ':', false);
  if (parts.empty() || parts.size() > 3 || parts[0].empty())
    return invalidArgument("--bind wants HOST[:CONTAINER][:rw], got `" + s + "`");
  v1::BindMount m;
  m.set_host_path(parts[0]);
  m.set_container_path(parts.size() >= 2 && !parts[1].empty() ? parts[1] : parts[0]);
  m.set_read_only(!(parts.size() == 3 && parts[2] == "rw"));
  return m;
}

}  // namespace lxmig::cli
