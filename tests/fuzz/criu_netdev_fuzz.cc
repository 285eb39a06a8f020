// CRIU's netdev-N.img (criu::editNetdevMtus), which a target rewrites
// from what a source or a checkpoint file sent before CRIU rebuilds the
// container's network namespace from it. An edit that changes nothing
// gives the input back; one that lowers every MTU writes an image that
// parses again with the same links, the new MTUs and nothing else changed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "lxmig/criu/image.h"

using lxmig::criu::LinkMtu;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<LinkMtu> seen;
  auto same = lxmig::criu::editNetdevMtus(bytes, [&](LinkMtu& l) { seen.push_back(l); });
  if (!same.ok()) {
    LXMIG_FUZZ_CHECK(!same.status().message().empty());
    LXMIG_FUZZ_CHECK(same.status().message().find('\n') == std::string::npos);
    return 0;
  }
  LXMIG_FUZZ_CHECK(*same == bytes);

  auto lowered = lxmig::criu::editNetdevMtus(bytes, [](LinkMtu& l) {
    l.mtu = l.mtu / 2;
    if (l.ipv6Mtu) *l.ipv6Mtu = *l.ipv6Mtu / 2;
  });
  LXMIG_FUZZ_CHECK(lowered.ok());
  std::vector<LinkMtu> again;
  auto reread = lxmig::criu::editNetdevMtus(*lowered, [&](LinkMtu& l) { again.push_back(l); });
  LXMIG_FUZZ_CHECK(reread.ok() && *reread == *lowered);
  LXMIG_FUZZ_CHECK(again.size() == seen.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    LXMIG_FUZZ_CHECK(again[i].type == seen[i].type && again[i].name == seen[i].name);
    LXMIG_FUZZ_CHECK(again[i].mtu == seen[i].mtu / 2);
    LXMIG_FUZZ_CHECK(again[i].ipv6Mtu.has_value() == seen[i].ipv6Mtu.has_value());
    if (seen[i].ipv6Mtu) LXMIG_FUZZ_CHECK(*again[i].ipv6Mtu == *seen[i].ipv6Mtu / 2);
  }
  return 0;
}
