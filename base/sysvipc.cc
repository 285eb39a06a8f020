#include "lxmig/base/sysvipc.h"

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "lxmig/base/files.h"

namespace lxmig {
namespace {

bool number(std::string_view w, int base, int64_t* out) {
  if (w.empty() || w.size() > 24) return false;
  const std::string s(w);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, base);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

}  // namespace

int64_t SysvRow::get(std::string_view name, int64_t otherwise) const {
  auto it = columns.find(name);
  return it == columns.end() ? otherwise : it->second;
}

Result<std::vector<SysvRow>> parseSysvTable(std::string_view text) {
  std::vector<SysvRow> rows;
  std::vector<std::string_view> header;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    auto w = words(line);
    if (w.empty()) continue;
    if (header.empty()) {
      if (w.size() < 3 || w[0] != "key" || w[2] != "perms")
        return invalidArgument("a System V table whose header is not `key ID perms ...`: " + std::string(line));
      header = std::move(w);
      continue;
    }
    SysvRow r;
    int64_t id = 0, perms = 0;
    bool ok = w.size() == header.size() && number(w[0], 10, &r.key) && number(w[1], 10, &id) && id >= 0 &&
              id <= INT32_MAX && number(w[2], 8, &perms) && perms >= 0 && perms <= UINT32_MAX;
    for (size_t i = 3; ok && i < w.size(); ++i) {
      int64_t v = 0;
      ok = number(w[i], 10, &v);
      r.columns.emplace(std::string(header[i]), v);
    }
    if (!ok) return invalidArgument("a System V table row that does not parse: " + std::string(line));
    r.id = static_cast<int32_t>(id);
    r.perms = static_cast<uint32_t>(perms);
    rows.push_back(std::move(r));
  }
  return rows;
}

Result<std::vector<SysvRow>> readSysvTable(std::string_view table) {
  if (table != "shm" && table != "sem" && table != "msg")
    return invalidArgument("no System V table `" + std::string(table) + "` (shm, sem or msg)");
  const std::string path = "/proc/sysvipc/" + std::string(table);
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFileHead(path, 16 << 20));
  auto rows = parseSysvTable(text);
  if (!rows.ok()) return rows.status().withContext(path);
  return rows;
}

}  // namespace lxmig
