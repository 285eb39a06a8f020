// A container's network namespace, kept out of CRIU's images.
//
// CRIU saves a container's network namespace at every dump (links,
// addresses, routes, rules, firewall, a set of sysctls: `ip ... save` and
// `iptables-save` runs) and rebuilds it at every restore, ~35 ms each way
// here, all inside the frozen window. The target can build the same
// namespace before the freeze instead: liblxc's start lays out every
// container lxmig runs the same way (lo; eth0, a veth with the container's
// MAC and addresses; the default route). When the namespace the container
// has at the freeze is still that layout (its shape equals the prepared
// one's), CRIU is told it is external: the dump names its inode and saves
// nothing of it, the restore's tasks join the prepared namespace.
//
//   target, at PREPARE:
//     LXMIG_ASSIGN_OR_RETURN(auto ns, net::PreparedNetns::create(layout));
//     reply.set_netns_shape(ns->shape());
//   source, before the freeze:
//     external = *net::netnsShape("/proc/" + init + "/ns/net") == reply.netns_shape();
//   source, frozen: glance again (cheap); dump with --external net[INODE]
//   target: restore with LXMIG_CRIU_NETNS=ns->path(); then ns->handOver().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

namespace lxmig::net {

// What liblxc's start makes of a container's network: eth0 and its route.
struct NetnsAddress {
  std::string ip;  // IPv4
  int prefixLen = 0;
  std::string broadcast;  // "" none (liblxc's versions compute it differently)
};
struct NetnsLayout {
  std::string hwaddr;  // eth0's MAC
  int mtu = 1500;
  std::vector<NetnsAddress> addresses;  // of eth0, in their order
  std::string gateway;                  // default route via it ("" none)
  std::string hostVeth;                 // the host end's name (lxc.net.0.veth.pair), [a-z0-9], at most 15
};

// eth0 and the default route of the namespace `nsPath` opens (a running
// container's: the source sends it at PREPARE). NotFound without eth0.
Result<NetnsLayout> netnsLayoutOf(const std::string& nsPath);
// Every field against its grammar (a layout comes from a peer).
Status checkLayout(const NetnsLayout& layout);

// A network namespace this process holds by an fd, laid out as `layout`:
// lo up; eth0 with the MAC and addresses (the broadcast liblxc gives
// them), up; the default route. The veth's host end is in the caller's
// namespace, up and on no bridge: nothing of the container reaches the
// node's bridge before the restore attaches it (CRIU does, from liblxc's
// veth option).
class PreparedNetns {
 public:
  static Result<std::unique_ptr<PreparedNetns>> create(const NetnsLayout& layout);
  // Unless handed over: the host end is deleted and the fd closed (the
  // namespace goes with its last reference).
  ~PreparedNetns();
  PreparedNetns(const PreparedNetns&) = delete;
  PreparedNetns& operator=(const PreparedNetns&) = delete;

  // A path that opens the namespace while this object lives
  // (/proc/PID/fd/N of this process).
  std::string path() const;
  const std::string& hostVeth() const { return hostVeth_; }
  // netnsShape() of it, taken when it was made.
  const std::string& shape() const { return shape_; }
  // It is made locked (no packet in or out but CRIU's repair packets):
  // unlock() once the restore is done, before the container runs.
  //
  // Locked, its links also have MTUs one off their own (restoreMtu()),
  // which unlock() puts back. A TCP socket CRIU restores computes its
  // segment size when it reconnects in repair mode, before CRIU gives it
  // back its peer's MSS: from the 536-byte default, so it would send
  // 524-byte segments for the rest of its life (the path MTU it noted then
  // never changes). Noted at the off MTU instead, the real one differs, and
  // the kernel computes the size again, with the right MSS, at the
  // socket's next transmission.
  Status unlock();
  // A restored container lives in it now: its host end is the container's
  // (liblxc deletes it when the container stops).
  void handOver() { handedOver_ = true; }

 private:
  PreparedNetns(UniqueFd fd, std::string hostVeth, int mtu)
      : fd_(std::move(fd)), hostVeth_(std::move(hostVeth)), mtu_(mtu) {}
  UniqueFd fd_;
  std::string hostVeth_, shape_;
  int mtu_;  // eth0's own
  bool handedOver_ = false;
};

// The loopback MTU of a new namespace.
constexpr int kLoopbackMtu = 65536;
// The MTU a link of a prepared namespace has while CRIU restores into it:
// one off `mtu` as a path MTU (which stops at 65535), and never below
// IPv6's minimum of 1280 when `mtu` is not (IPv6 leaves a link below it).
int restoreMtu(int mtu);

// A link of a namespace CRIU rebuilds from its images (a container that
// made its own, a checkpoint): the target lowers its MTU in the images as
// a prepared namespace has it (restoreMtu()) and raises it again once the
// restore is done, before the container runs.
struct LoweredMtu {
  std::string link;
  int mtu = 0;      // its own
  int lowered = 0;  // restoreMtu(mtu), what CRIU gave it
  // Its own IPv6 MTU when not the link's (raising the link's sets that one
  // to it).
  std::optional<int> ipv6Mtu;
};
// The entry of a link CRIU is to make with a lowered MTU: one of a plain
// name (lower case and digits, as eth0 and lo) and an MTU from 68 to
// 65536; nullopt leaves the link as it is. `ipv6Mtu`: the image's.
std::optional<LoweredMtu> lowerForRestore(const std::string& link, int64_t mtu, std::optional<int64_t> ipv6Mtu);
// In the namespace `nsPath` opens, each listed link that has its lowered
// MTU gets its own back; a link of that name with another MTU is another
// namespace's and stays. `raised` (optional) counts them.
Status raiseMtus(const std::string& nsPath, const std::vector<LoweredMtu>& links, int* raised = nullptr);

// What CRIU would save of the namespace `nsPath` opens, one fact per line,
// without what changes by itself (counters, lifetimes, carrier, DAD
// state): links (index, name, kind, MAC, MTU, flags), addresses, routes
// and rules of every table, the nftables ruleset, legacy iptables tables,
// and the sysctls CRIU carries (IPv4 and IPv6 interface settings of all,
// default and each link; net.unix.max_dgram_qlen; ping_group_range).
// Runs `ip` and `nft` inside it (some 40 ms): before the freeze.
Result<std::string> netnsShape(const std::string& nsPath);

// A cheap look at the namespace of `pid` (a few /proc/PID/net files:
// links, addresses, routes, legacy iptables tables), for the frozen window:
// the same text means nothing of those changed since netnsShape().
// *inode: the namespace's inode (CRIU's key for it).
Result<std::string> netnsGlance(pid_t pid, uint64_t* inode);

// The lines of two shapes that differ, first one of each (for a report:
// "eth0 mtu 9000" against "eth0 mtu 1500"); "" when they are equal.
std::string shapeDifference(const std::string& ours, const std::string& theirs);

}  // namespace lxmig::net
