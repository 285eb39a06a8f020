#include "proc_parse.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/base/sysvipc.h"

namespace lxmig::grouping::internal {
namespace {

template <typename T>
bool num(std::string_view s, T* out, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::optional<StatLine> parseStat(std::string_view text) {
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  StatLine st;
  if (!num(text.substr(0, open > 0 ? open - 1 : 0), &st.pid)) return std::nullopt;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  auto f = words(text.substr(close + 1));
  // After comm: state(3) ppid(4) pgrp session tty_nr tpgid flags(9) ... starttime(22)
  if (f.size() < 20) return std::nullopt;
  st.state = f[0].empty() ? '?' : f[0][0];
  if (!num(f[1], &st.ppid) || !num(f[2], &st.pgrp) || !num(f[3], &st.session) || !num(f[6], &st.flags) ||
      !num(f[19], &st.startTime))
    return std::nullopt;
  return st;
}

std::optional<MapsLine> parseMapsLine(std::string_view line) {
  // 7f1c2a000000-7f1c2a021000 rw-s 00000000 00:01 1234   /dev/zero (deleted)
  MapsLine m;
  size_t pos = 0;
  auto next = [&]() -> std::string_view {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    size_t s = pos;
    while (pos < line.size() && line[pos] != ' ') ++pos;
    return line.substr(s, pos - s);
  };
  auto range = next(), perms = next(), offset = next(), dev = next(), inode = next();
  if (range.empty() || perms.size() != 4 || offset.empty() || dev.empty() || inode.empty()) return std::nullopt;
  auto dash = range.find('-');
  auto colon = dev.find(':');
  if (dash == std::string_view::npos || colon == std::string_view::npos) return std::nullopt;
  if (!num(range.substr(0, dash), &m.start, 16) || !num(range.substr(dash + 1), &m.end, 16)) return std::nullopt;
  if (!num(dev.substr(0, colon), &m.devMajor, 16) || !num(dev.substr(colon + 1), &m.devMinor, 16)) return std::nullopt;
  if (!num(inode, &m.inode)) return std::nullopt;
  m.perms = std::string(perms);
  while (pos < line.size() && line[pos] == ' ') ++pos;
  m.path = std::string(line.substr(pos));
  while (!m.path.empty() && (m.path.back() == '\n' || m.path.back() == ' ')) m.path.pop_back();
  return m;
}

std::string containerFromCgroup(std::string_view text) {
  size_t start = 0;
  std::string found;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    auto c2 = line.find(':', line.find(':') + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view path = line.substr(c2 + 1);
    size_t p = 0;
    while (p < path.size()) {
      size_t q = path.find('/', p);
      if (q == std::string_view::npos) q = path.size();
      std::string_view part = path.substr(p, q - p);
      for (std::string_view pre : {std::string_view("lxc.payload."), std::string_view("payload.")}) {
        if (part.size() > pre.size() && part.substr(0, pre.size()) == pre) {
          // The cgroup v2 line ("0::") is the most telling; otherwise the first.
          if (found.empty() || line.substr(0, 3) == "0::") found = std::string(part.substr(pre.size()));
        }
      }
      p = q + 1;
    }
  }
  return found;
}

std::optional<uint64_t> bracketInode(std::string_view link, std::string_view prefix) {
  if (link.size() < prefix.size() + 3 || link.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto rest = link.substr(prefix.size());
  if (rest.size() < 3 || rest[0] != ':' || rest[1] != '[' || rest.back() != ']') return std::nullopt;
  uint64_t v = 0;
  if (!num(rest.substr(2, rest.size() - 3), &v)) return std::nullopt;
  return v;
}

std::optional<NetRow> parseNetLine(std::string_view line, std::string_view proto, bool v6) {
  //  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
  //   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
  auto f = words(line);
  if (f.size() < 10 || f[0].empty() || f[0].back() != ':') return std::nullopt;
  NetRow row;
  if (!num(f[9], &row.inode) || row.inode == 0) return std::nullopt;
  auto addr = [&](std::string_view hex) -> std::string {
    auto colon = hex.find(':');
    if (colon == std::string_view::npos) return "?";
    unsigned port = 0;
    if (!num(hex.substr(colon + 1), &port, 16)) return "?";
    std::string_view h = hex.substr(0, colon);
    char buf[INET6_ADDRSTRLEN] = "?";
    if (!v6 && h.size() == 8) {
      uint32_t a = 0;
      if (num(h, &a, 16)) ::inet_ntop(AF_INET, &a, buf, sizeof buf);  // already network order in memory
    } else if (v6 && h.size() == 32) {
      unsigned char b[16];
      for (int w = 0; w < 4; ++w) {
        uint32_t word = 0;
        if (!num(h.substr(w * 8, 8), &word, 16)) return "?";
        std::memcpy(b + w * 4, &word, 4);
      }
      ::inet_ntop(AF_INET6, b, buf, sizeof buf);
    }
    return (v6 ? "[" + std::string(buf) + "]" : std::string(buf)) + ":" + std::to_string(port);
  };
  static const char* const kTcpStates[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                           "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                           "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  unsigned st = 0;
  (void)num(f[3], &st, 16);
  std::string state = proto.substr(0, 3) == "tcp" ? (st < 12 ? kTcpStates[st] : "?") : "";
  row.summary = std::string(proto) + " " + addr(f[1]);
  if (state == "LISTEN" || (proto.substr(0, 3) == "udp" && f[2].find_first_not_of("0:") == std::string_view::npos))
    row.summary += state.empty() ? "" : " LISTEN";
  else row.summary += " -> " + addr(f[2]) + (state.empty() ? "" : " " + state);
  return row;
}

std::map<uint64_t, std::string> parseSysvShm(std::string_view text) {
  std::map<uint64_t, std::string> out;
  auto rows = parseSysvTable(text);
  if (!rows.ok()) return out;  // evidence only: a table it cannot read adds none
  for (const auto& r : *rows) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "key 0x%08llx nattch %lld cpid %lld",
                  static_cast<unsigned long long>(r.key) & 0xffffffffull, static_cast<long long>(r.get("nattch")),
                  static_cast<long long>(r.get("cpid")));
    out[static_cast<uint64_t>(r.id)] = buf;
  }
  return out;
}

}  // namespace lxmig::grouping::internal
