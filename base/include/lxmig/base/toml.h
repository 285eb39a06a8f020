// lxmig's config files in TOML (parsed by toml++), flattened: keys become
// "table.sub.key", strings, numbers and booleans their text, arrays lists.
// Key parts are bare words ([A-Za-z0-9_-]); values hold no control
// characters; dates, times and arrays of tables are not used. Errors name
// the file and line: "agent.conf:3: ...".
//
//   LXMIG_ASSIGN_OR_RETURN(auto kv, parseToml(text, path));
//   std::string node = kv.get("node");
//   auto devices = kv.list("devices");   // ["/dev/fuse", "gpu=/dev/nvidia0"]
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig {

class Toml {
 public:
  // Scalars only; a list's key is not among them.
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  // An array's items; nullopt when `key` is not an array.
  std::optional<std::vector<std::string>> list(const std::string& key) const {
    auto it = lists_.find(key);
    if (it == lists_.end()) return std::nullopt;
    return it->second;
  }
  // Direct children tables of `prefix` that hold keys: for "node" -> {"n1", "n2"}.
  std::vector<std::string> tables(const std::string& prefix) const;
  void set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  void setList(const std::string& key, std::vector<std::string> items) { lists_[key] = std::move(items); }
  const std::map<std::string, std::string>& values() const { return values_; }
  const std::map<std::string, std::vector<std::string>>& lists() const { return lists_; }
  // Every key, scalars' and lists', in order.
  std::vector<std::string> keys() const;
  // The 1-based line a key was set on (0: unknown), for messages.
  int lineOf(const std::string& key) const {
    auto it = lines_.find(key);
    return it == lines_.end() ? 0 : it->second;
  }
  void setLine(const std::string& key, int line) { lines_[key] = line; }

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, int> lines_;
};

// `origin` names the file in errors: "agent.conf:3: ...".
Result<Toml> parseToml(const std::string& text, const std::string& origin);
Result<Toml> loadToml(const std::string& path);

}  // namespace lxmig
