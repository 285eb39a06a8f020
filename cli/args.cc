#include "args.h"

#include <cstdlib>

#include "lxmig/base/files.h"

namespace lxmig::cli {

Result<int64_t> parseDurationMs(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  const std::string unit = end;
  if (end != s.c_str() && v >= 0) {
    if (unit.empty() || unit == "ms") return static_cast<int64_t>(v);
    if (unit == "s") return static_cast<int64_t>(v * 1000);
  }
  return invalidArgument("bad duration `" + s + "` (e.g. 300ms or 0.5s)");
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
