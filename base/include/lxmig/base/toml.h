// A TOML subset for lxmig's small config files: `[section.sub]` headers,
// `key = "string" | 'string' | number | true | false`, `#` comments.
// Keys are flattened to "section.sub.key".
//
//   LXMIG_ASSIGN_OR_RETURN(auto kv, parseTomlLite(text, path));
//   std::string node = kv.get("node");
#pragma once

#include <map>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig {

class TomlLite {
 public:
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  // Direct children tables of `prefix`: for "node" -> {"n1", "n2"}.
  std::vector<std::string> tables(const std::string& prefix) const;
  void set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

// `origin` names the file in errors: "agent.conf:3: expected key = value".
Result<TomlLite> parseTomlLite(const std::string& text, const std::string& origin);
Result<TomlLite> loadTomlLite(const std::string& path);

}  // namespace lxmig
