#include "lxmig/net/cutover.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::net {
namespace {

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
  in_addr a{};
  if (::inet_pton(AF_INET, r.ip.c_str(), &a) != 1) return invalidArgument("not an IPv4 address: " + r.ip);
  LXMIG_RETURN_IF_ERROR(runIp({"route", "replace", r.ip + "/32", "dev", r.bridge}, false).withContext("route " + r.ip));
  if (!r.fabricIf.empty()) LXMIG_RETURN_IF_ERROR(sendGratuitousArp(r.fabricIf, r.ip));
  return okStatus();
}

Status routeVia(const AddressRoute& r, const std::string& via) {
  in_addr a{}, v{};
  if (::inet_pton(AF_INET, r.ip.c_str(), &a) != 1) return invalidArgument("not an IPv4 address: " + r.ip);
  if (::inet_pton(AF_INET, via.c_str(), &v) != 1) return invalidArgument("not an IPv4 address: " + via);
  if (r.fabricIf.empty()) return failedPrecondition("no fabric interface to route " + r.ip + " through");
  return runIp({"route", "replace", r.ip + "/32", "via", via, "dev", r.fabricIf, "proto",
                std::to_string(kForwardRouteProto)},
               false)
      .withContext("route " + r.ip + " via " + via);
}

Status unrouteVia(const AddressRoute& r, const std::string& via) {
  in_addr a{}, v{};
  if (::inet_pton(AF_INET, r.ip.c_str(), &a) != 1) return invalidArgument("not an IPv4 address: " + r.ip);
  if (::inet_pton(AF_INET, via.c_str(), &v) != 1) return invalidArgument("not an IPv4 address: " + via);
  return runIp(
             {"route", "del", r.ip + "/32", "via", via, "dev", r.fabricIf, "proto", std::to_string(kForwardRouteProto)},
             true)
      .withContext("unroute " + r.ip + " via " + via);
}

Status flushForwardRoutes() {
  return runIp({"route", "flush", "proto", std::to_string(kForwardRouteProto)}, true)
      .withContext("flush forwarding routes");
}

Status releaseAddress(const AddressRoute& r) {
  return runIp({"route", "del", r.ip + "/32", "dev", r.bridge}, true).withContext("unroute " + r.ip);
}

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
