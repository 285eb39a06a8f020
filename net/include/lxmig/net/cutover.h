// Address cut-over: which node routes a container's address.
//
// Each node routes its containers with a /32 host route toward its container
// bridge; the fabric finds the node by proxy ARP on the node's fabric
// interface (or, on routed L3 networks, by the host route announced to the
// routers). When a container moves, the source withdraws its route and the
// target installs its own and sends a gratuitous ARP for the address from its
// fabric interface, so neighbours and switches update at once instead of
// after their cache ageing (docs/testbed.md draws the topology).
//
//   LXMIG_RETURN_IF_ERROR(net::claimAddress({"10.200.1.10", "lxbr0", "fab0"}));
//   ...
//   (void)net::releaseAddress({"10.200.1.10", "lxbr0", "fab0"});
#pragma once

#include <string>

#include "lxmig/base/status.h"

namespace lxmig::net {

struct AddressRoute {
  std::string ip;        // IPv4 dotted quad of the container
  std::string bridge;    // node-side bridge the container hangs on
  std::string fabricIf;  // interface toward the other nodes; "" = no announcement
};

// Installs (replaces) the /32 route toward the bridge and announces the
// address with gratuitous ARP on the fabric interface. Idempotent.
Status claimAddress(const AddressRoute& r);
// Removes the /32 route. NotFound (no such route) counts as success.
Status releaseAddress(const AddressRoute& r);
// Deletes the node's neighbour entry for the address on the bridge, once
// the container that had it is gone for good (removed, moved away, merged):
// the next container to get the address has another MAC, and a stale entry
// the kernel keeps confirming would send its traffic to the old one. None
// counts as success.
Status forgetNeighbour(const AddressRoute& r);
// After a container left: its address routed toward `via` (the node that
// runs it now, an IPv4 address on `r.fabricIf`), so that packets still sent
// here (held during the frozen window, or from neighbours that missed the
// gratuitous ARP) follow it. Marked with kForwardRouteProto, so that an
// agent that restarts can remove what it left (flushForwardRoutes).
// unrouteVia removes the route only while it still leads to `via`.
constexpr int kForwardRouteProto = 252;
Status routeVia(const AddressRoute& r, const std::string& via);
Status unrouteVia(const AddressRoute& r, const std::string& via);
Status flushForwardRoutes();
// Sends `count` gratuitous ARP requests for ip from ifname's MAC.
Status sendGratuitousArp(const std::string& ifname, const std::string& ip, int count = 2);

// An address of an interface inside another network namespace (`netns`,
// e.g. /proc/PID/ns/net of a container's init): lxmig merge gives the kept
// container the merged containers' addresses this way. Adding an address
// that is there already, or removing one that is not, succeeds.
Status addAddressIn(const std::string& netns, const std::string& ifname, const std::string& ip, int prefixLen);
Status removeAddressIn(const std::string& netns, const std::string& ifname, const std::string& ip, int prefixLen);
// Gratuitous ARP for ip from ifname inside `netns`: the node and the
// containers on the bridge send to that interface from now on.
Status announceIn(const std::string& netns, const std::string& ifname, const std::string& ip);

}  // namespace lxmig::net
