#include "lxmig/net/cutover.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_packet.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::net {
namespace {

using Socket = UniqueHandle<mnl_socket, mnl_socket_close>;
// How long the kernel may take to answer a route change.
constexpr int kRouteAnswerMs = 2000;

// One IPv4 /32 route added, replaced or deleted through rtnetlink, and the
// kernel's answer read: no `ip` process (one costs ~7 ms on the reference
// VM, and the source's withdrawal and the target's claim are frozen time).
// `via` empty: a route on the link of `dev`; `proto` 0: the kernel's
// default for `ip route` (boot). A delete of a route or device that is not
// there succeeds when okIfMissing.
Status changeRoute(uint16_t type, uint16_t flags, const std::string& ip, const std::string& dev, const std::string& via,
                   int proto, bool okIfMissing) {
  in_addr dst{}, gw{};
  if (::inet_pton(AF_INET, ip.c_str(), &dst) != 1) return invalidArgument("not an IPv4 address: " + ip);
  if (!via.empty() && ::inet_pton(AF_INET, via.c_str(), &gw) != 1)
    return invalidArgument("not an IPv4 address: " + via);
  if (dev.empty() || dev.size() >= IFNAMSIZ) return invalidArgument("bad interface name `" + dev + "`");
  const unsigned ifindex = ::if_nametoindex(dev.c_str());
  const bool del = type == RTM_DELROUTE;
  if (ifindex == 0) {
    if (del && okIfMissing) return okStatus();
    return Status::fromErrno("interface", dev);
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  nlh->nlmsg_seq = static_cast<uint32_t>(monotonicNs());
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 32;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = static_cast<unsigned char>(proto ? proto : del ? RTPROT_UNSPEC : RTPROT_BOOT);
  // As `ip route`: a delete matches any scope, a link route is scope link.
  rtm->rtm_scope = del ? RT_SCOPE_NOWHERE : via.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rtm->rtm_type = del ? RTN_UNSPEC : RTN_UNICAST;
  mnl_attr_put(nlh, RTA_DST, sizeof dst, &dst);
  mnl_attr_put_u32(nlh, RTA_OIF, ifindex);
  if (!via.empty()) mnl_attr_put(nlh, RTA_GATEWAY, sizeof gw, &gw);
  const std::string what =
      std::string(del ? "delete" : "set") + " route " + ip + "/32" + (via.empty() ? "" : " via " + via) + " dev " + dev;
  Socket sock(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!sock) return Status::fromErrno("netlink socket to", what);
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) return Status::fromErrno("netlink bind to", what);
  if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) return Status::fromErrno("netlink", what);
  pollfd p{mnl_socket_get_fd(sock.get()), POLLIN, 0};
  if (::poll(&p, 1, kRouteAnswerMs) <= 0) return deadlineExceeded(what + ": no answer from the kernel");
  const ssize_t n = mnl_socket_recvfrom(sock.get(), buf.data(), buf.size());
  if (n < 0) return Status::fromErrno("netlink", what);
  if (mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, mnl_socket_get_portid(sock.get()), nullptr, nullptr) < 0) {
    if (del && okIfMissing && (errno == ESRCH || errno == ENODEV)) return okStatus();
    return Status::fromErrno("netlink", what);
  }
  return okStatus();
}

Status runIp(const std::vector<std::string>& args, bool okIfMissing) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  LXMIG_ASSIGN_OR_RETURN(auto out, runCommand(argv, {.timeoutMs = 5000}));
  if (out.exitCode == 0) return okStatus();
  if (okIfMissing && (out.err.find("No such process") != std::string::npos ||
                      out.err.find("Cannot find device") != std::string::npos ||
                      out.err.find("No such file or directory") != std::string::npos))
    return okStatus();
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return internalError("`" + cmd + "` failed: " + std::string(trim(out.err)));
}

Status address(const char* verb, const std::string& netns, const std::string& ifname, const std::string& ip,
               int prefixLen) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return invalidArgument("not an IPv4 address: " + ip);
  if (prefixLen < 0 || prefixLen > 32) return invalidArgument("bad prefix length " + std::to_string(prefixLen));
  const std::string cidr = ip + "/" + std::to_string(prefixLen);
  return inNamespace(netns, CLONE_NEWNET, [&]() -> Status {
    LXMIG_ASSIGN_OR_RETURN(auto out, runCommand({"ip", "addr", verb, cidr, "dev", ifname}, {.timeoutMs = 5000}));
    if (out.exitCode == 0) return okStatus();
    const bool add = std::string(verb) == "add";
    // Already there (add) or already gone (del): the state asked for.
    if (add ? out.err.find("File exists") != std::string::npos || out.err.find("already assigned") != std::string::npos
            : out.err.find("Cannot assign requested address") != std::string::npos)
      return okStatus();
    return internalError("`ip addr " + std::string(verb) + " " + cidr + " dev " + ifname + "` in " + netns +
                         " failed: " + std::string(trim(out.err)));
  });
}

}  // namespace

Status addAddressIn(const std::string& netns, const std::string& ifname, const std::string& ip, int prefixLen) {
  return address("add", netns, ifname, ip, prefixLen);
}

Status removeAddressIn(const std::string& netns, const std::string& ifname, const std::string& ip, int prefixLen) {
  return address("del", netns, ifname, ip, prefixLen);
}

Status announceIn(const std::string& netns, const std::string& ifname, const std::string& ip) {
  return inNamespace(netns, CLONE_NEWNET, [&] { return sendGratuitousArp(ifname, ip); });
}

Status claimAddress(const AddressRoute& r) {
  LXMIG_RETURN_IF_ERROR(changeRoute(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r.ip, r.bridge, "", 0, false));
  if (!r.fabricIf.empty()) LXMIG_RETURN_IF_ERROR(sendGratuitousArp(r.fabricIf, r.ip));
  return okStatus();
}

Status routeVia(const AddressRoute& r, const std::string& via) {
  if (r.fabricIf.empty()) return failedPrecondition("no fabric interface to route " + r.ip + " through");
  return changeRoute(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r.ip, r.fabricIf, via, kForwardRouteProto, false);
}

Status unrouteVia(const AddressRoute& r, const std::string& via) {
  if (r.fabricIf.empty()) return okStatus();  // never routed through one
  return changeRoute(RTM_DELROUTE, 0, r.ip, r.fabricIf, via, kForwardRouteProto, true);
}

Status flushForwardRoutes() {
  return runIp({"route", "flush", "proto", std::to_string(kForwardRouteProto)}, true)
      .withContext("flush forwarding routes");
}

Status releaseAddress(const AddressRoute& r) { return changeRoute(RTM_DELROUTE, 0, r.ip, r.bridge, "", 0, true); }

Status forgetNeighbour(const AddressRoute& r) {
  in_addr a{};
  if (::inet_pton(AF_INET, r.ip.c_str(), &a) != 1) return invalidArgument("not an IPv4 address: " + r.ip);
  return runIp({"neigh", "del", r.ip, "dev", r.bridge}, true).withContext("forget the neighbour " + r.ip);
}

Status sendGratuitousArp(const std::string& ifname, const std::string& ip, int count) {
  in_addr addr{};
  if (::inet_pton(AF_INET, ip.c_str(), &addr) != 1) return invalidArgument("not an IPv4 address: " + ip);
  UniqueFd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (!fd) return Status::fromErrno("socket AF_PACKET for", ifname);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd.get(), SIOCGIFINDEX, &ifr) != 0) return Status::fromErrno("SIOCGIFINDEX", ifname);
  int ifindex = ifr.ifr_ifindex;
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return Status::fromErrno("SIOCGIFHWADDR", ifname);

  // ARP request with sender IP == target IP: every Linux neighbour table
  // that knows the address takes the new MAC at once (is_garp override).
  struct __attribute__((packed)) {
    uint16_t htype, ptype;
    uint8_t hlen, plen;
    uint16_t op;
    uint8_t sha[6];
    uint32_t spa;
    uint8_t tha[6];
    uint32_t tpa;
  } arp{};
  arp.htype = htons(ARPHRD_ETHER);
  arp.ptype = htons(ETH_P_IP);
  arp.hlen = 6;
  arp.plen = 4;
  arp.op = htons(1);
  std::memcpy(arp.sha, ifr.ifr_hwaddr.sa_data, 6);
  arp.spa = addr.s_addr;
  arp.tpa = addr.s_addr;

  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex;
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  for (int i = 0; i < count; ++i) {
    if (::sendto(fd.get(), &arp, sizeof arp, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      return Status::fromErrno("send gratuitous ARP on", ifname);
  }
  return okStatus();
}

}  // namespace lxmig::net
