#include "lxmig/base/toml.h"

#include <toml++/toml.h>
#include <cstdio>
#include <set>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"

namespace lxmig {

std::vector<std::string> Toml::tables(const std::string& prefix) const {
  std::set<std::string> names;
  const std::string p = prefix + ".";
  for (const auto& k : keys()) {
    if (!startsWith(k, p)) continue;
    std::string rest = k.substr(p.size());
    auto dot = rest.find('.');
    if (dot != std::string::npos) names.insert(rest.substr(0, dot));
  }
  return {names.begin(), names.end()};
}

std::vector<std::string> Toml::keys() const {
  std::set<std::string> all;
  for (const auto& [k, v] : values_) all.insert(k);
  for (const auto& [k, v] : lists_) all.insert(k);
  return {all.begin(), all.end()};
}

namespace {

bool bareKey(std::string_view k) {
  if (k.empty() || k.size() > 128) return false;
  for (char c : k)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

bool plain(std::string_view v) {
  // base/grammar's rule, at any length
  return lxmig::checkPlainText(v, "value", v.size()).ok();
}

// A scalar as text; nullopt for dates, times and anything else.
std::optional<std::string> scalarText(const toml::node& n) {
  if (auto s = n.as_string()) return s->get();
  if (auto i = n.as_integer()) return std::to_string(i->get());
  if (auto b = n.as_boolean()) return std::string(b->get() ? "true" : "false");
  if (auto f = n.as_floating_point()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", f->get());
    return std::string(buf);
  }
  return std::nullopt;
}

class Flattener {
 public:
  Flattener(const std::string& origin, Toml& out) : origin_(origin), out_(out) {}

  Status table(const toml::table& t, const std::string& prefix) {
    for (auto&& [k, node] : t) {
      const std::string key(k.str());
      const int line = static_cast<int>(node.source().begin.line);
      if (!bareKey(key)) return error(line, "bad key " + quote(key) + " (letters, digits, '_' and '-')");
      const std::string full = prefix.empty() ? key : prefix + "." + key;
      if (auto* sub = node.as_table()) {
        LXMIG_RETURN_IF_ERROR(table(*sub, full));
        continue;
      }
      if (auto* arr = node.as_array()) {
        std::vector<std::string> items;
        for (const auto& el : *arr) {
          auto text = scalarText(el);
          if (!text) return error(line, "`" + full + "` holds strings, numbers or booleans only");
          if (!plain(*text)) return error(line, "control characters in `" + full + "`");
          items.push_back(std::move(*text));
        }
        out_.setList(full, std::move(items));
        out_.setLine(full, line);
        continue;
      }
      auto text = scalarText(node);
      if (!text) return error(line, "`" + full + "`: dates and times are not used");
      if (!plain(*text)) return error(line, "control characters in `" + full + "`");
      out_.set(full, std::move(*text));
      out_.setLine(full, line);
    }
    return okStatus();
  }

 private:
  Status error(int line, const std::string& what) const {
    return invalidArgument(origin_ + ":" + std::to_string(line) + ": " + what);
  }
  static std::string quote(const std::string& k) {
    std::string q;
    for (char c : k.substr(0, 80)) q += plain(std::string_view(&c, 1)) ? c : '?';
    return "`" + q + "`";
  }
  const std::string& origin_;
  Toml& out_;
};

}  // namespace

Result<Toml> parseToml(const std::string& text, const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::string what(e.description());
    for (char& c : what)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    return invalidArgument(origin + ":" + std::to_string(e.source().begin.line) + ": " + what);
  }
  Toml out;
  LXMIG_RETURN_IF_ERROR(Flattener(origin, out).table(t, ""));
  return out;
}

Result<Toml> loadToml(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parseToml(text, path);
}

}  // namespace lxmig
