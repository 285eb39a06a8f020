#include "lxmig/base/grammar.h"

#include <cctype>
#include <cstdio>

namespace lxmig {
namespace {

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

void hexByte(unsigned char u, std::string* out) {
  char b[8];
  std::snprintf(b, sizeof b, "\\x%02x", u);
  *out += b;
}

// C0 controls and DEL as \xNN, and the C1 controls' UTF-8 form (c2 80 to
// c2 9f: a terminal may read U+009B as CSI) as two of them.
std::string shownRaw(std::string_view v, size_t max) {
  std::string out;
  const std::string_view head = v.substr(0, max);
  for (size_t i = 0; i < head.size(); ++i) {
    const auto u = static_cast<unsigned char>(head[i]);
    const auto next = i + 1 < head.size() ? static_cast<unsigned char>(head[i + 1]) : 0;
    if (u < 0x20 || u == 0x7f) {
      hexByte(u, &out);
    } else if (u == 0xc2 && next >= 0x80 && next <= 0x9f) {
      hexByte(u, &out);
      hexByte(next, &out);
      ++i;
    } else {
      out += head[i];
    }
  }
  if (v.size() > max) out += "...";
  return out;
}

Status bad(std::string_view what, std::string_view value, std::string_view rule) {
  return invalidArgument("bad " + std::string(what) + " " + quote(value) + ": " + std::string(rule));
}

Status checkComponents(std::string_view path, std::string_view what) {
  size_t depth = 0;
  size_t start = 0;
  for (;;) {
    size_t end = path.find('/', start);
    std::string_view part = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.empty()) return bad(what, path, "empty component");
    if (part == "." || part == "..") return bad(what, path, "`.` or `..` component");
    if (part.size() > 255) return bad(what, path, "component longer than 255 bytes");
    if (++depth > kMaxPathDepth) return bad(what, path, "more than 256 components");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return okStatus();
}

}  // namespace

std::string quote(std::string_view value, size_t max) { return "`" + shownRaw(value, max) + "`"; }

std::string printable(std::string_view text) { return shownRaw(text, text.size()); }

Status checkContainerName(std::string_view name) {
  constexpr std::string_view rule = "letters, digits, '-' and '_', at most 48, starting with a letter or digit";
  if (name.empty() || name.size() > kMaxContainerName || !alnum(name[0])) return bad("container name", name, rule);
  for (char c : name)
    if (!alnum(c) && c != '-' && c != '_') return bad("container name", name, rule);
  return okStatus();
}

Status checkNodeName(std::string_view name) {
  constexpr std::string_view rule = "letters, digits, '-', '_' and '.', at most 63, starting with a letter or digit";
  if (name.empty() || name.size() > kMaxNodeName || !alnum(name[0])) return bad("node name", name, rule);
  for (char c : name)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return bad("node name", name, rule);
  return okStatus();
}

Status checkMigrationId(std::string_view id) {
  constexpr std::string_view rule = "16 lower-case hex digits";
  if (id.size() != 16) return bad("migration id", id, rule);
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("migration id", id, rule);
  return okStatus();
}

Status checkRelativePath(std::string_view path) {
  if (path == ".") return okStatus();
  if (path.empty()) return bad("path", path, "empty");
  if (path.size() > kMaxPath) return bad("path", path, "longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return bad("path", path, "NUL byte");
  if (path[0] == '/') return bad("path", path, "absolute where a relative path belongs");
  return checkComponents(path, "path");
}

Status checkAbsolutePath(std::string_view path) {
  if (path.empty() || path[0] != '/') return bad("path", path, "not absolute");
  if (path.size() > kMaxPath) return bad("path", path, "longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return bad("path", path, "NUL byte");
  if (path == "/") return okStatus();
  return checkComponents(path.substr(1), "path");
}

Status checkInterfaceName(std::string_view name, std::string_view what) {
  bool ok = !name.empty() && name.size() <= 15 && name != "." && name != "..";
  for (unsigned char ch : name) ok = ok && ch != '/' && ch != ':' && ch > ' ' && ch != 0x7f;
  return ok ? okStatus() : bad(what, name, "an interface name, 1 to 15 bytes without '/', ':' or spaces");
}

Status checkPlainText(std::string_view text, std::string_view what, size_t max) {
  if (text.size() > max) return bad(what, text, "longer than " + std::to_string(max) + " bytes");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return bad(what, text, "control character");
  }
  return okStatus();
}

Result<uint64_t> parseUint(std::string_view text, std::string_view what, uint64_t min, uint64_t max) {
  const std::string range = "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  // Canonical only: no leading zeros, so a number prints back as its text.
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return bad(what, text, range);
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad(what, text, range);
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return bad(what, text, range);
    v = v * 10 + d;
  }
  if (v < min || v > max) return bad(what, text, range);
  return v;
}

Result<std::pair<std::string, uint16_t>> splitHostPort(const std::string& address) {
  std::string host, port;
  if (!address.empty() && address[0] == '[') {
    auto close = address.find("]:");
    if (close == std::string::npos) return invalidArgument("bad address " + quote(address) + " (want [v6]:PORT)");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon)
      return invalidArgument("bad address " + quote(address) + " (want HOST:PORT)");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || host.size() > 255 || !checkPlainText(host, "host").ok() || host.find(' ') != std::string::npos)
    return invalidArgument("bad address " + quote(address) + " (want HOST:PORT)");
  auto p = parseUint(port, "port", 0, 65535);
  if (!p.ok()) return invalidArgument("bad address " + quote(address) + " (want HOST:PORT, the port 0-65535)");
  return std::pair{host, static_cast<uint16_t>(*p)};
}

}  // namespace lxmig
