// The node's connection tracking entries of one container (ctnetlink over a
// libmnl socket, in the caller's netns: the dump is parsed here, create and
// delete messages are built with libnetfilter_conntrack).
//
// Export selects entries by the container's addresses (either end of either
// direction, so NAT entries whose address moves with the container come
// along); import creates them with the same tuples, TCP state, status,
// timeout, mark, zone and NAT mapping. Both talk to the kernel in batches:
// many netlink messages per send, errors read back per message.
//
//   LXMIG_ASSIGN_OR_RETURN(auto entries, net::exportConntrack({"10.200.1.10"}));
//   std::string wire = net::encodeConntrack(entries);                     // into NetState
//   LXMIG_ASSIGN_OR_RETURN(auto stats, net::importConntrack(entries));   // on the target
//   (void)net::deleteConntrack({"10.200.1.10"});                          // on the source, at commit
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::net {

// One IPv4 entry. Addresses in network byte order (as on the wire), ports
// and everything else in host order.
struct ConntrackEntry {
  uint32_t origSrc = 0, origDst = 0, replSrc = 0, replDst = 0;
  uint16_t origSport = 0, origDport = 0, replSport = 0, replDport = 0;
  uint32_t status = 0;   // IPS_* bits
  uint32_t timeout = 0;  // seconds left
  uint32_t mark = 0;
  uint16_t zone = 0;
  uint16_t icmpId = 0;
  uint8_t proto = 0;  // IPPROTO_*
  uint8_t icmpType = 0, icmpCode = 0;
  // TCP: TCP_CONNTRACK_* state, per-direction flags and window scale.
  uint8_t tcpState = 0, tcpFlagsOrig = 0, tcpFlagsRepl = 0, tcpWscaleOrig = 0, tcpWscaleRepl = 0;

  bool operator==(const ConntrackEntry&) const = default;
};
using ConntrackEntries = std::vector<ConntrackEntry>;

// Entries of the current network namespace's table that involve any of
// `ips` (IPv4 dotted quads).
Result<ConntrackEntries> exportConntrack(const std::vector<std::string>& ips);

struct ConntrackImportStats {
  size_t created = 0;
  size_t updated = 0;             // an entry with the same tuple existed: refreshed
  std::vector<size_t> refreshed;  // indices of those entries (an abort leaves them)
};
// Creates the entries (large sets from two threads: the kernel's side of a
// create is most of the cost and runs on the sending CPU); the first entry
// the kernel refuses fails the call (after the rest were tried), naming the
// tuple and the errno text.
Result<ConntrackImportStats> importConntrack(const ConntrackEntries& entries);

// Deletes the entries that involve `ips`; returns how many went.
Result<size_t> deleteConntrack(const std::vector<std::string>& ips);
// Deletes exactly these entries (by original tuple); missing ones are fine.
Result<size_t> deleteConntrackEntries(const ConntrackEntries& entries);

// Wire form: a version byte, then fixed-size little-endian records.
std::string encodeConntrack(const ConntrackEntries& entries);
Result<ConntrackEntries> decodeConntrack(std::string_view wire);

// "tcp 10.99.0.2:40000 -> 10.200.1.10:7000" for messages.
std::string describe(const ConntrackEntry& e);

}  // namespace lxmig::net
