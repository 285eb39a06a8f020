// What `ip -j` prints of a network namespace, read into a layout and into
// shape lines (netns.h). The namespace is the container's: its root names
// links and labels addresses, so the JSON is read defensively (a missing or
// mistyped key is a one-line error, never an exception). Private to net/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/net/netns.h"

namespace lxmig::net {

// eth0's MAC, MTU and IPv4 addresses from `ip -j addr show`, the gateway of
// its default route from `ip -j -4 route show default`. NotFound without
// eth0. The layout is not checked (checkLayout) and has no host veth.
Result<NetnsLayout> layoutFromIp(std::string_view addrJson, std::string_view routeJson);

// The shape lines of `ip -j addr show`, `ip -j -4/-6 route show table all`,
// `ip -j -4/-6 rule show` and `nft list ruleset` (six texts, in that
// order), without what changes by itself; *ifnames: the links' names
// (each a valid interface name, 1 to 15 bytes, no '/', not `.` or `..`).
Result<std::vector<std::string>> shapeLinesFromIp(const std::vector<std::string>& parts,
                                                  std::vector<std::string>* ifnames);

}  // namespace lxmig::net
