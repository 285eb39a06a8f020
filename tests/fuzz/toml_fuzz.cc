// The TOML subset of lxmig's config files (parseTomlLite): keys and values
// are single trimmed lines, and what parses can be written back as TOML
// (keys under their section, values bare or quoted) that parses to the same
// key/value map. tables() names only tables that have keys.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "lxmig/base/files.h"
#include "lxmig/base/toml_lite.h"

namespace {

bool isTrimmed(std::string_view s) { return lxmig::trim(s) == s; }

// A key as it may stand left of '=' on a line of its own.
bool writableKey(std::string_view k) {
  return !k.empty() && isTrimmed(k) && k.find_first_of("=\n") == std::string_view::npos && k[0] != '[' && k[0] != '#';
}

// A section name as it may stand in `[...]`.
bool writableSection(std::string_view s) {
  return !s.empty() && isTrimmed(s) && s.find('\n') == std::string_view::npos;
}

// A value as a bare word or a quoted string; nullopt when it has no form.
std::optional<std::string> writeValue(const std::string& v) {
  if (!v.empty() && isTrimmed(v) && v[0] != '"' && v[0] != '\'' && v.find('#') == std::string::npos) return v;
  if (v.find('"') == std::string::npos) return "\"" + v + "\"";
  if (v.find('\'') == std::string::npos) return "'" + v + "'";
  return std::nullopt;
}

// Top-level keys first (a section cannot be closed), then one section per key.
std::optional<std::string> writeToml(const lxmig::TomlLite& kv) {
  std::string top, sections;
  for (const auto& [key, value] : kv.values()) {
    auto v = writeValue(value);
    if (!v) return std::nullopt;
    if (writableKey(key)) {
      top += key + " = " + *v + "\n";
      continue;
    }
    bool done = false;
    for (size_t dot = key.find('.'); dot != std::string::npos && !done; dot = key.find('.', dot + 1)) {
      std::string_view section = std::string_view(key).substr(0, dot), rest = std::string_view(key).substr(dot + 1);
      if (writableSection(section) && writableKey(rest)) {
        sections += "[" + std::string(section) + "]\n" + std::string(rest) + " = " + *v + "\n";
        done = true;
      }
    }
    if (!done) return std::nullopt;
  }
  return top + sections;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto kv = lxmig::parseTomlLite(text, "fuzz.toml");
  if (!kv.ok()) {
    // Errors name the file and line: "fuzz.toml:3: ...".
    LXMIG_FUZZ_CHECK(lxmig::startsWith(kv.status().message(), "fuzz.toml:"));
    return 0;
  }
  for (const auto& [key, value] : kv->values()) {
    LXMIG_FUZZ_CHECK(!key.empty() && key.find('\n') == std::string::npos);
    LXMIG_FUZZ_CHECK(value.find('\n') == std::string::npos);
    LXMIG_FUZZ_CHECK(kv->has(key) && kv->get(key, "\n") == value);
  }
  // Every value came from a line that stays writable: the round trip exists.
  auto written = writeToml(*kv);
  LXMIG_FUZZ_CHECK(written.has_value());
  auto back = lxmig::parseTomlLite(*written, "written.toml");
  LXMIG_FUZZ_CHECK(back.ok());
  LXMIG_FUZZ_CHECK(back->values() == kv->values());

  // tables(p): non-empty names N with some key "p.N.<rest>".
  for (const char* prefix : {"node", "client"}) {
    for (const auto& name : kv->tables(prefix)) {
      LXMIG_FUZZ_CHECK(!name.empty() && name.find('.') == std::string::npos);
      const std::string p = std::string(prefix) + "." + name + ".";
      auto it = kv->values().lower_bound(p);
      LXMIG_FUZZ_CHECK(it != kv->values().end() && lxmig::startsWith(it->first, p));
    }
  }
  return 0;
}
