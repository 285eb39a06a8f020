// The node's connection tracking entries of one container
// (libnetfilter_conntrack over a libmnl socket, in the caller's netns).
//
// Export selects entries by the container's addresses (either end of either
// direction, so NAT entries whose address moves with the container come
// along); import creates them with the same tuples, TCP state, status,
// timeout, mark, zone and NAT mapping. Both talk to the kernel in batches:
// many netlink messages per send, errors read back per message.
//
//   LXMIG_ASSIGN_OR_RETURN(auto entries, net::exportConntrack({"10.200.1.10"}));
//   LXMIG_ASSIGN_OR_RETURN(auto stats, net::importConntrack(entries));   // on the target
//   (void)net::deleteConntrack({"10.200.1.10"});                          // on the source, at commit
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/v1/net.pb.h"

namespace lxmig::net {

using ConntrackEntries = std::vector<v1::ConntrackEntry>;

// Entries of the current network namespace's table that involve any of
// `ips` (IPv4 dotted quads).
Result<ConntrackEntries> exportConntrack(const std::vector<std::string>& ips);

struct ConntrackImportStats {
  size_t created = 0;
  size_t updated = 0;  // an entry with the same tuple existed: refreshed
};
// Creates the entries; the first entry the kernel refuses fails the call
// (after the rest were tried), naming the tuple and the errno text.
Result<ConntrackImportStats> importConntrack(const ConntrackEntries& entries);

// Deletes the entries that involve `ips`; returns how many went.
Result<size_t> deleteConntrack(const std::vector<std::string>& ips);
// Deletes exactly these entries (by original tuple); missing ones are fine.
Result<size_t> deleteConntrackEntries(const ConntrackEntries& entries);

// "tcp 10.99.0.2:40000 -> 10.200.1.10:7000" for messages.
std::string describe(const v1::ConntrackEntry& e);

}  // namespace lxmig::net
