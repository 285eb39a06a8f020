// What a peer sends about a container's network namespace (net/netns.h:
// the layout in PREPARE, the shape in its reply) and what `ip -j` prints of
// a namespace whose root is the container's: a layout that passes
// checkLayout has the promised shape; reading ip's JSON never throws, and
// an error is one line; interface names that reach /proc paths are single
// components; shapeDifference is one bounded line, empty only for equal
// shapes.
//
// Input: sections separated by a line "@@": addr JSON, route JSON, four
// route/rule JSON texts and an nft ruleset (the shape's six), then two
// shapes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "lxmig/net/netns.h"
#include "netns_parse.h"

namespace {

std::vector<std::string> sections(const std::string& text) {
  std::vector<std::string> out;
  for (size_t from = 0;;) {
    const size_t at = text.find("\n@@\n", from);
    out.push_back(text.substr(from, at == std::string::npos ? std::string::npos : at - from));
    if (at == std::string::npos) break;
    from = at + 4;
  }
  return out;
}

bool oneLine(const lxmig::Status& st) { return st.ok() || st.message().find('\n') == std::string::npos; }

bool isIfName(const std::string& s) {
  return !s.empty() && s.size() <= 15 && s.find('/') == std::string::npos && s != "." && s != "..";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  auto parts = sections(std::string(reinterpret_cast<const char*>(in), size));
  parts.resize(10);

  auto layout = lxmig::net::layoutFromIp(parts[0], parts[1]);
  LXMIG_FUZZ_CHECK(oneLine(layout.status()));
  if (layout.ok()) {
    layout->hostVeth = "lxm0123456789ab";
    const lxmig::Status checked = lxmig::net::checkLayout(*layout);
    LXMIG_FUZZ_CHECK(oneLine(checked));
    if (checked.ok()) {
      LXMIG_FUZZ_CHECK(layout->hwaddr.size() == 17 && layout->mtu >= 68 && layout->mtu <= 65535);
      LXMIG_FUZZ_CHECK(!layout->addresses.empty() && layout->addresses.size() <= 64);
      for (const auto& a : layout->addresses) {
        LXMIG_FUZZ_CHECK(a.prefixLen >= 1 && a.prefixLen <= 32 && a.ip.size() <= 15 && a.broadcast.size() <= 15);
        LXMIG_FUZZ_CHECK(a.ip.find_first_not_of("0123456789.") == std::string::npos);
      }
      LXMIG_FUZZ_CHECK(layout->gateway.find_first_not_of("0123456789.") == std::string::npos);
    }
  }

  // A layout straight from a peer: every field is whatever it sent.
  lxmig::net::NetnsLayout peer;
  peer.hostVeth = parts[2];
  peer.hwaddr = parts[3];
  peer.mtu = static_cast<int>(parts[4].size() * 97);
  peer.addresses.push_back({parts[5], static_cast<int>(parts[5].size()), parts[6]});
  peer.gateway = parts[7];
  const lxmig::Status peerChecked = lxmig::net::checkLayout(peer);
  LXMIG_FUZZ_CHECK(oneLine(peerChecked));
  if (peerChecked.ok())
    LXMIG_FUZZ_CHECK(peer.hostVeth.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos &&
                     !peer.hostVeth.empty() && peer.hostVeth.size() <= 15);

  std::vector<std::string> ifnames;
  auto lines = lxmig::net::shapeLinesFromIp({parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]}, &ifnames);
  LXMIG_FUZZ_CHECK(oneLine(lines.status()));
  for (const auto& n : ifnames) LXMIG_FUZZ_CHECK(isIfName(n));
  if (lines.ok())
    for (const auto& l : *lines) LXMIG_FUZZ_CHECK(l.find('\n') == std::string::npos);

  const std::string diff = lxmig::net::shapeDifference(parts[8], parts[9]);
  LXMIG_FUZZ_CHECK(diff.empty() == (parts[8] == parts[9]));
  LXMIG_FUZZ_CHECK(diff.find('\n') == std::string::npos && diff.size() <= 430);
  return 0;
}
