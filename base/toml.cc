#include "lxmig/base/toml_lite.h"

#include <set>

#include "lxmig/base/files.h"

namespace lxmig {

std::vector<std::string> TomlLite::tables(const std::string& prefix) const {
  std::set<std::string> names;
  std::string p = prefix + ".";
  for (const auto& [k, v] : values_) {
    if (!startsWith(k, p)) continue;
    std::string rest = k.substr(p.size());
    auto dot = rest.find('.');
    if (dot != std::string::npos) names.insert(rest.substr(0, dot));
  }
  return {names.begin(), names.end()};
}

// A section or key: dotted parts, none empty ("node.n1", not "node." or "a..b").
static bool validName(std::string_view name) {
  for (const auto& part : split(name, '.', false))
    if (trim(part).empty()) return false;
  return true;
}

Result<TomlLite> parseTomlLite(const std::string& text, const std::string& origin) {
  TomlLite out;
  std::string section;
  int lineNo = 0;
  for (const auto& rawLine : split(text, '\n', false)) {
    ++lineNo;
    std::string_view line = trim(rawLine);
    auto where = [&] { return origin + ":" + std::to_string(lineNo) + ": "; };
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      if (line.back() != ']' || line.size() < 3) return invalidArgument(where() + "malformed section header");
      section = std::string(trim(line.substr(1, line.size() - 2)));
      if (!validName(section)) return invalidArgument(where() + "empty name in section `" + section + "`");
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return invalidArgument(where() + "expected key = value");
    std::string key(trim(line.substr(0, eq)));
    std::string_view val = trim(line.substr(eq + 1));
    if (key.empty()) return invalidArgument(where() + "empty key");
    if (!validName(key)) return invalidArgument(where() + "empty name in key `" + key + "`");
    std::string value;
    if (!val.empty() && (val[0] == '"' || val[0] == '\'')) {
      char q = val[0];
      auto end = val.find(q, 1);
      if (end == std::string_view::npos) return invalidArgument(where() + "unterminated string");
      value = std::string(val.substr(1, end - 1));
      std::string_view rest = trim(val.substr(end + 1));
      if (!rest.empty() && rest[0] != '#') return invalidArgument(where() + "text after value");
    } else {
      auto hash = val.find('#');
      value = std::string(trim(val.substr(0, hash)));
      if (value.empty()) return invalidArgument(where() + "missing value for `" + key + "`");
    }
    out.set(section.empty() ? key : section + "." + key, value);
  }
  return out;
}

Result<TomlLite> loadTomlLite(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parseTomlLite(text, path);
}

}  // namespace lxmig
