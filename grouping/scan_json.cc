#include "lxmig/grouping/scan_json.h"

#include <cstdio>
#include <string_view>

namespace lxmig::grouping {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Length(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  Writer& raw(std::string_view s) {
    out_ += s;
    return *this;
  }
  Writer& str(std::string_view s) {
    out_ += '"';
    for (size_t i = 0; i < s.size();) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
        ++i;
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
        ++i;
      } else if (size_t n = utf8Length(s, i)) {
        out_.append(s.data() + i, n);
        i += n;
      } else {
        out_ += "\xef\xbf\xbd";  // U+FFFD for a byte that is not UTF-8
        ++i;
      }
    }
    out_ += '"';
    return *this;
  }
  Writer& key(std::string_view k) {
    str(k);
    out_ += ": ";
    return *this;
  }
  Writer& num(long long v) {
    out_ += std::to_string(v);
    return *this;
  }
  Writer& boolean(bool b) {
    out_ += b ? "true" : "false";
    return *this;
  }
  template <typename List, typename Fn>
  Writer& array(const List& items, Fn each, const char* sep = ", ") {
    out_ += '[';
    bool first = true;
    for (const auto& x : items) {
      if (!first) out_ += sep;
      first = false;
      each(x);
    }
    out_ += ']';
    return *this;
  }

 private:
  std::string& out_;
};

}  // namespace

std::string toJsonText(const Scan& scan, const std::vector<Group>& groups, const std::string& node) {
  std::string out;
  out.reserve(256 + groups.size() * 400);
  Writer w(out);
  w.raw("{").key("node").str(node).raw(", ").key("duration_ms").num(scan.durationMs).raw(", ");
  w.key("processes").num(static_cast<long long>(scan.processes.size())).raw(", ");
  w.key("unreadable").array(scan.unreadable, [&](const std::string& u) { w.str(u); }).raw(",\n");
  w.key("groups").raw("[\n");
  bool firstGroup = true;
  for (const auto& g : groups) {
    if (!firstGroup) w.raw(",\n");
    firstGroup = false;
    w.raw(" {").key("id").str(g.id).raw(", ").key("verdict").str(g.verdict).raw(", ");
    w.key("containers").array(g.containers, [&](const std::string& c) { w.str(c); }).raw(", ");
    w.key("why").str(g.why).raw(", ").key("action").str(g.action).raw(", ").key("members").raw("[");
    bool firstMember = true;
    for (pid_t pid : g.members) {
      auto it = scan.processes.find(pid);
      if (it == scan.processes.end()) continue;
      const auto& p = it->second;
      if (!firstMember) w.raw(", ");
      firstMember = false;
      w.raw("{").key("pid").num(p.pid).raw(", ").key("ppid").num(p.ppid).raw(", ").key("comm").str(p.comm);
      w.raw(", ").key("container").str(p.container).raw(", ").key("net_sockets");
      w.array(p.netSockets, [&](const std::string& s) { w.str(s); }).raw("}");
    }
    w.raw("], ").key("edges").array(g.edges, [&](const Edge& e) {
      w.raw("{").key("kind").str(e.kind).raw(", ").key("object").str(e.object).raw(", ").key("path").str(e.path);
      w.raw(", ").key("crosses_container").boolean(e.crossesContainer).raw(", ");
      w.key("a").raw("{").key("pid").num(e.a.pid).raw(", ").key("how").str(e.a.how).raw("}, ");
      w.key("b").raw("{").key("pid").num(e.b.pid).raw(", ").key("how").str(e.b.how).raw("}}");
    });
    w.raw("}");
  }
  w.raw("\n]}\n");
  return out;
}

Result<std::string> scanAndSelect(const Selection& sel, const std::string& node) {
  Scan scan = scanNode({});
  std::vector<Group> chosen;
  if (sel.pid > 0) {
    LXMIG_ASSIGN_OR_RETURN(auto g, groupOf(scan, sel.pid));
    chosen.push_back(std::move(g));
  } else if (!sel.container.empty()) {
    LXMIG_ASSIGN_OR_RETURN(chosen, groupsOfContainer(scan, sel.container));
  } else {
    for (const auto& g : scan.groups) {
      bool containerised = false;
      for (const auto& c : g.containers) containerised |= !c.empty();
      if (sel.all || containerised) chosen.push_back(g);
    }
  }
  return toJsonText(scan, chosen, node);
}

}  // namespace lxmig::grouping
