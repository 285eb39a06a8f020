// lxmig's config files in TOML (parseToml, toml++ underneath): whatever the
// input, an error names the file and line and stays one line; what parses
// has keys of bare dotted words and values without control characters, and
// written back as TOML (dotted keys, basic strings, arrays) it parses to the
// same scalars and lists. tables() names only tables that have keys.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/toml.h"

namespace {

bool plain(const std::string& v) {
  // base/grammar's rule, at any length
  return lxmig::checkPlainText(v, "value", v.size()).ok();
}

bool bareDotted(const std::string& k) {
  if (k.empty() || k.front() == '.' || k.back() == '.' || k.find("..") != std::string::npos) return false;
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

std::string basic(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string writeToml(const lxmig::Toml& kv) {
  std::string out;
  for (const auto& [key, value] : kv.values()) out += key + " = " + basic(value) + "\n";
  for (const auto& [key, items] : kv.lists()) {
    out += key + " = [";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + basic(items[i]);
    out += "]\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto kv = lxmig::parseToml(text, "fuzz.toml");
  if (!kv.ok()) {
    LXMIG_FUZZ_CHECK(lxmig::startsWith(kv.status().message(), "fuzz.toml:"));
    LXMIG_FUZZ_CHECK(kv.status().message().find('\n') == std::string::npos);
    return 0;
  }
  for (const auto& [key, value] : kv->values()) {
    LXMIG_FUZZ_CHECK(bareDotted(key) && plain(value));
    LXMIG_FUZZ_CHECK(kv->has(key) && kv->get(key, "\n") == value && !kv->list(key));
  }
  for (const auto& [key, items] : kv->lists()) {
    LXMIG_FUZZ_CHECK(bareDotted(key) && !kv->has(key));
    for (const auto& i : items) LXMIG_FUZZ_CHECK(plain(i));
  }
  auto back = lxmig::parseToml(writeToml(*kv), "written.toml");
  LXMIG_FUZZ_CHECK(back.ok());
  LXMIG_FUZZ_CHECK(back->values() == kv->values());
  LXMIG_FUZZ_CHECK(back->lists() == kv->lists());

  // tables(p): non-empty names N with some key "p.N.<rest>".
  const auto keys = kv->keys();
  for (const char* prefix : {"node", "store"}) {
    for (const auto& name : kv->tables(prefix)) {
      LXMIG_FUZZ_CHECK(!name.empty() && name.find('.') == std::string::npos);
      const std::string p = std::string(prefix) + "." + name + ".";
      bool found = false;
      for (const auto& k : keys) found |= lxmig::startsWith(k, p);
      LXMIG_FUZZ_CHECK(found);
    }
  }
  return 0;
}
