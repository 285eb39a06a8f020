#include "lxmig/net/sockets.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"

namespace lxmig::net {
namespace {

constexpr size_t kMaxPayload4 = 65535 - 20 - 8;
constexpr size_t kMaxPayload6 = 65535 - 8;

std::string endpoint(int family, const void* addr, uint16_t port) {
  char text[INET6_ADDRSTRLEN] = "?";
  ::inet_ntop(family, addr, text, sizeof text);
  return family == AF_INET6 ? "[" + std::string(text) + "]:" + std::to_string(port)
                            : std::string(text) + ":" + std::to_string(port);
}

// Sends a sock_diag dump request (`req`, `len` bytes after the netlink
// header) and calls `each` with the payload of every answer of at least
// `minLen` bytes, its length too.
template <typename Req>
Status diagDump(int diag, const Req& req, size_t minLen, const std::string& what,
                const std::function<void(const void*, size_t)>& each) {
  struct {
    nlmsghdr nlh;
    Req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req = req;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::sendto(diag, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return Status::fromErrno("send sock_diag request for", what);
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::recv(diag, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::fromErrno("sock_diag dump of", what);
    if (n == 0) return okStatus();
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return okStatus();
      if (h->nlmsg_type == NLMSG_ERROR)
        return Status::fromErrno("sock_diag dump of", what, -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error);
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(minLen))
        each(NLMSG_DATA(h), h->nlmsg_len - NLMSG_LENGTH(0));
    }
  }
}

// The `family`/`protocol` sockets of the namespace in `states`.
Status dumpFamily(int diag, int family, int protocol, uint32_t states, std::vector<InetSocket>* out) {
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(family);
  req.sdiag_protocol = static_cast<uint8_t>(protocol);
  req.idiag_states = states;
  const std::string what = std::string(protocol == IPPROTO_TCP ? "tcp" : "udp") + (family == AF_INET6 ? "6" : "");
  return diagDump(diag, req, sizeof(inet_diag_msg), what, [&](const void* data, size_t) {
    const auto* m = static_cast<const inet_diag_msg*>(data);
    InetSocket s;
    s.family = m->idiag_family;
    s.protocol = protocol;
    s.state = m->idiag_state;
    s.local = endpoint(s.family, m->id.idiag_src, ntohs(m->id.idiag_sport));
    s.rqueue = m->idiag_rqueue;
    s.inode = m->idiag_inode;
    out->push_back(std::move(s));
  });
}

// The Unix stream and seqpacket listeners of the namespace, with the
// connections waiting in their backlog as rqueue.
Status dumpUnixListeners(int diag, std::vector<InetSocket>* out) {
  unix_diag_req req{};
  req.sdiag_family = AF_UNIX;
  req.udiag_states = 1u << TCP_LISTEN;
  req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN;
  return diagDump(diag, req, sizeof(unix_diag_msg), "unix listeners", [&](const void* data, size_t size) {
    const auto* m = static_cast<const unix_diag_msg*>(data);
    InetSocket s;
    s.family = AF_UNIX;
    s.state = m->udiag_state;
    s.inode = m->udiag_ino;
    s.local = "(unnamed)";
    int len = static_cast<int>(size - sizeof *m);
    for (auto* a = reinterpret_cast<rtattr*>(const_cast<unix_diag_msg*>(m) + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
      const auto* value = static_cast<const char*>(RTA_DATA(a));
      const size_t n = RTA_PAYLOAD(a);
      if (a->rta_type == UNIX_DIAG_NAME && n > 0)
        s.local = value[0] == '\0' ? "@" + std::string(value + 1, n - 1) : std::string(value, strnlen(value, n));
      if (a->rta_type == UNIX_DIAG_RQLEN && n >= sizeof(unix_diag_rqlen))
        s.rqueue = reinterpret_cast<const unix_diag_rqlen*>(value)->udiag_rqueue;
    }
    out->push_back(std::move(s));
  });
}

// Which of `pids` holds each socket inode of `inodes` (the first found).
std::map<uint64_t, HeldSocket> holders(const std::vector<pid_t>& pids, const std::vector<InetSocket>& sockets) {
  std::map<uint64_t, HeldSocket> out;
  for (const auto& s : sockets) out[s.inode].socket = s;
  size_t left = out.size();
  for (pid_t p : pids) {
    if (left == 0) break;
    const std::string base = "/proc/" + std::to_string(p) + "/fd/";
    for (const auto& fd : listDir(base).value_or({})) {
      auto link = readLink(base + fd);
      uint64_t ino = 0, n = 0;
      if (!link.ok() || !startsWith(*link, "socket:[") || link->back() != ']' ||
          !parseUint64(std::string_view(*link).substr(8, link->size() - 9), &ino) || !parseUint64(fd, &n))
        continue;
      auto it = out.find(ino);
      if (it == out.end() || it->second.pid != 0) continue;
      it->second.pid = p;
      it->second.fd = static_cast<int>(n);
      --left;
    }
  }
  return out;
}

// One's complement sum of `n` bytes (big-endian 16-bit words).
uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) acc += static_cast<uint32_t>(p[n - 1] << 8);
  return acc;
}

uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc & 0xffff);
}

void put16(std::string& s, size_t at, uint16_t v) {
  s[at] = static_cast<char>(v >> 8);
  s[at + 1] = static_cast<char>(v & 0xff);
}

bool isLoopback(const std::string& addr) {
  if (addr.size() == 4) return static_cast<uint8_t>(addr[0]) == 127;
  static const std::string kV6Loopback = std::string(15, '\0') + '\1';
  return addr == kV6Loopback;
}

// A socket of another process, duplicated here (the process may be frozen).
Result<UniqueFd> takeSocket(const HeldSocket& h) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, h.pid, 0)));
  if (!pidfd) return Status::fromErrno("pidfd_open pid", std::to_string(h.pid));
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), h.fd, 0)));
  if (!fd) return Status::fromErrno("pidfd_getfd of fd " + std::to_string(h.fd) + " from pid", std::to_string(h.pid));
  return fd;
}

// The address bytes (4 for IPv4 and IPv4-mapped IPv6) of a sockaddr.
std::string addressBytes(const sockaddr_storage& sa, uint16_t* port) {
  if (sa.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(sa);
    *port = ntohs(a.sin_port);
    return std::string(reinterpret_cast<const char*>(&a.sin_addr), 4);
  }
  const auto& a = reinterpret_cast<const sockaddr_in6&>(sa);
  *port = ntohs(a.sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) return std::string(reinterpret_cast<const char*>(&a.sin6_addr) + 12, 4);
  return std::string(reinterpret_cast<const char*>(&a.sin6_addr), 16);
}

int getInt(int fd, int level, int opt) {
  int v = 0;
  socklen_t len = sizeof v;
  return ::getsockopt(fd, level, opt, &v, &len) == 0 ? v : 0;
}

// Peeks every datagram queued in `fd` (SO_PEEK_OFF walks the queue; the
// socket's own options are put back as they were).
Status peekSocket(int fd, const InetSocket& s, v1::NetState* net, uint64_t* bytes) {
  const int family = getInt(fd, SOL_SOCKET, SO_DOMAIN);
  const int pktLevel = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  const int pktOpt = family == AF_INET6 ? IPV6_RECVPKTINFO : IP_PKTINFO;
  const int peekOff = getInt(fd, SOL_SOCKET, SO_PEEK_OFF);
  const int pktInfo = getInt(fd, pktLevel, pktOpt);
  const int zero = 0, one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0 ||
      ::setsockopt(fd, pktLevel, pktOpt, &one, sizeof one) != 0)
    return Status::fromErrno("set peek options on UDP socket", s.local);
  sockaddr_storage self{};
  socklen_t selfLen = sizeof self;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &selfLen);
  uint16_t selfPort = 0;
  const std::string selfAddr = addressBytes(self, &selfPort);
  Status st;
  std::vector<char> buf(65536);
  for (;;) {
    sockaddr_storage from{};
    alignas(cmsghdr) char control[256];
    iovec iov{buf.data(), buf.size()};
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno != EAGAIN) st = Status::fromErrno("peek at the queue of UDP socket", s.local);
      break;
    }
    v1::QueuedDatagram d;
    uint16_t srcPort = 0;
    d.set_src_addr(addressBytes(from, &srcPort));
    d.set_src_port(srcPort);
    d.set_dst_port(selfPort);
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
        d.set_dst_addr(std::string(reinterpret_cast<const char*>(&pi.ipi_addr), 4));
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
        d.set_dst_addr(IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr)
                           ? std::string(reinterpret_cast<const char*>(&pi.ipi6_addr) + 12, 4)
                           : std::string(reinterpret_cast<const char*>(&pi.ipi6_addr), 16));
      }
    }
    if (d.dst_addr().empty()) d.set_dst_addr(selfAddr);
    if (net->udp_queued_size() >= static_cast<int>(kMaxQueuedDatagrams) ||
        *bytes + static_cast<uint64_t>(n) > kMaxQueuedBytes || d.dst_addr().size() != d.src_addr().size()) {
      net->set_udp_left_out(net->udp_left_out() + 1);
      continue;
    }
    d.set_payload(buf.data(), static_cast<size_t>(n));
    *bytes += static_cast<uint64_t>(n);
    *net->add_udp_queued() = std::move(d);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peekOff, sizeof peekOff) != 0 ||
      ::setsockopt(fd, pktLevel, pktOpt, &pktInfo, sizeof pktInfo) != 0)
    if (st.ok()) st = Status::fromErrno("restore the options of UDP socket", s.local);
  return st;
}

}  // namespace

namespace {

Result<UniqueFd> openDiag(const std::string& netns) {
  UniqueFd diag;
  LXMIG_RETURN_IF_ERROR(inNamespace(netns, CLONE_NEWNET, [&]() -> Status {
    diag.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    return diag ? okStatus() : Status::fromErrno("open sock_diag in", netns);
  }));
  timeval tv{.tv_sec = 5, .tv_usec = 0};  // the kernel answers; a bound all the same
  ::setsockopt(diag.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return diag;
}

}  // namespace

Result<std::vector<InetSocket>> inetSockets(const std::string& netns, int protocol, uint32_t states) {
  LXMIG_ASSIGN_OR_RETURN(UniqueFd diag, openDiag(netns));
  std::vector<InetSocket> out;
  for (int family : {AF_INET, AF_INET6})
    LXMIG_RETURN_IF_ERROR(dumpFamily(diag.get(), family, protocol, states, &out).withContext(netns));
  return out;
}

Result<std::vector<HeldSocket>> unacceptedConnections(const std::string& netns, const std::vector<pid_t>& pids) {
  LXMIG_ASSIGN_OR_RETURN(UniqueFd diag, openDiag(netns));
  std::vector<InetSocket> listeners;
  for (int family : {AF_INET, AF_INET6})
    LXMIG_RETURN_IF_ERROR(dumpFamily(diag.get(), family, IPPROTO_TCP, 1u << TCP_LISTEN, &listeners).withContext(netns));
  LXMIG_RETURN_IF_ERROR(dumpUnixListeners(diag.get(), &listeners).withContext(netns));
  std::erase_if(listeners, [](const InetSocket& s) { return s.rqueue == 0; });
  std::vector<HeldSocket> out;
  if (listeners.empty()) return out;
  for (auto& [ino, h] : holders(pids, listeners)) out.push_back(std::move(h));
  return out;
}

Result<v1::NetState> peekUdpQueues(const std::string& netns, const std::vector<pid_t>& pids) {
  v1::NetState net;
  LXMIG_ASSIGN_OR_RETURN(auto sockets, inetSockets(netns, IPPROTO_UDP, ~0u));
  std::erase_if(sockets, [](const InetSocket& s) { return s.rqueue == 0; });
  if (sockets.empty()) return net;
  uint64_t bytes = 0;
  for (const auto& [ino, h] : holders(pids, sockets)) {
    if (h.pid == 0) continue;  // not the container's (another namespace's holder): not ours to carry
    LXMIG_ASSIGN_OR_RETURN(UniqueFd fd, takeSocket(h));
    LXMIG_RETURN_IF_ERROR(peekSocket(fd.get(), h.socket, &net, &bytes));
  }
  return net;
}

Result<std::string> datagramPacket(const v1::QueuedDatagram& d) {
  const size_t alen = d.src_addr().size();
  if ((alen != 4 && alen != 16) || d.dst_addr().size() != alen)
    return invalidArgument("queued datagram: addresses of " + std::to_string(alen) + " and " +
                           std::to_string(d.dst_addr().size()) + " bytes (4 or 16, the same)");
  if (d.src_port() > 65535 || d.dst_port() == 0 || d.dst_port() > 65535)
    return invalidArgument("queued datagram: bad port " + std::to_string(d.src_port()) + " -> " +
                           std::to_string(d.dst_port()));
  const bool v6 = alen == 16;
  if (d.payload().size() > (v6 ? kMaxPayload6 : kMaxPayload4))
    return invalidArgument("queued datagram: payload of " + std::to_string(d.payload().size()) + " bytes");
  const size_t ipLen = v6 ? 40 : 20;
  const size_t udpLen = 8 + d.payload().size();
  std::string p(ipLen + udpLen, '\0');
  if (v6) {
    p[0] = 0x60;
    put16(p, 4, static_cast<uint16_t>(udpLen));
    p[6] = IPPROTO_UDP;
    p[7] = 64;
    p.replace(8, 16, d.src_addr());
    p.replace(24, 16, d.dst_addr());
  } else {
    p[0] = 0x45;
    put16(p, 2, static_cast<uint16_t>(ipLen + udpLen));
    p[8] = 64;
    p[9] = IPPROTO_UDP;
    p.replace(12, 4, d.src_addr());
    p.replace(16, 4, d.dst_addr());
    put16(p, 10, fold(sum16(reinterpret_cast<const uint8_t*>(p.data()), 20, 0)));
  }
  put16(p, ipLen, static_cast<uint16_t>(d.src_port()));
  put16(p, ipLen + 2, static_cast<uint16_t>(d.dst_port()));
  put16(p, ipLen + 4, static_cast<uint16_t>(udpLen));
  p.replace(ipLen + 8, d.payload().size(), d.payload());
  // The checksum covers a pseudo header: both addresses, protocol, length.
  uint32_t acc = sum16(reinterpret_cast<const uint8_t*>(d.src_addr().data()), alen, 0);
  acc = sum16(reinterpret_cast<const uint8_t*>(d.dst_addr().data()), alen, acc);
  acc += IPPROTO_UDP + static_cast<uint32_t>(udpLen);
  acc = sum16(reinterpret_cast<const uint8_t*>(p.data()) + ipLen, udpLen, acc);
  const uint16_t sum = fold(acc);
  put16(p, ipLen + 6, sum == 0 ? 0xffff : sum);
  return p;
}

Status checkQueuedDatagrams(const v1::NetState& net, const std::vector<std::string>& ownIps) {
  if (net.udp_queued_size() > static_cast<int>(kMaxQueuedDatagrams))
    return invalidArgument(std::to_string(net.udp_queued_size()) + " queued datagrams, more than the " +
                           std::to_string(kMaxQueuedDatagrams) + " a migration carries");
  std::set<std::string> own;
  for (const auto& ip : ownIps) {
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) == 1) own.insert(std::string(reinterpret_cast<const char*>(&a), 4));
  }
  uint64_t bytes = 0;
  for (int i = 0; i < net.udp_queued_size(); ++i) {
    const auto& d = net.udp_queued(i);
    LXMIG_RETURN_IF_ERROR(datagramPacket(d).status().withContext("datagram " + std::to_string(i)));
    if (!isLoopback(d.dst_addr()) && !own.count(d.dst_addr()))
      return invalidArgument("queued datagram " + std::to_string(i) + " is addressed to " +
                             endpoint(d.dst_addr().size() == 4 ? AF_INET : AF_INET6, d.dst_addr().data(),
                                      static_cast<uint16_t>(d.dst_port())) +
                             ", not to the container");
    bytes += d.payload().size();
    if (bytes > kMaxQueuedBytes)
      return invalidArgument("queued datagrams of more than " + humanBytes(kMaxQueuedBytes) +
                             ", more than a migration carries");
  }
  return okStatus();
}

Status requeueDatagrams(const std::string& netns, const v1::NetState& net) {
  if (net.udp_queued_size() == 0) return okStatus();
  return inNamespace(netns, CLONE_NEWNET, [&]() -> Status {
    UniqueFd raw4, raw6;
    for (const auto& d : net.udp_queued()) {
      LXMIG_ASSIGN_OR_RETURN(std::string packet, datagramPacket(d));
      const bool v6 = d.dst_addr().size() == 16;
      UniqueFd& raw = v6 ? raw6 : raw4;
      // IPPROTO_RAW: the packet carries its own IP header (with the
      // sender's address, as the datagram had it).
      if (!raw) raw.reset(::socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
      if (!raw) return Status::fromErrno("open a raw socket in", netns);
      sockaddr_storage to{};
      socklen_t toLen = 0;
      if (v6) {
        auto& a = reinterpret_cast<sockaddr_in6&>(to);
        a.sin6_family = AF_INET6;
        std::memcpy(&a.sin6_addr, d.dst_addr().data(), 16);
        toLen = sizeof a;
      } else {
        auto& a = reinterpret_cast<sockaddr_in&>(to);
        a.sin_family = AF_INET;
        std::memcpy(&a.sin_addr, d.dst_addr().data(), 4);
        toLen = sizeof a;
      }
      if (::sendto(raw.get(), packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), toLen) < 0)
        return Status::fromErrno("put a queued datagram back to", endpoint(v6 ? AF_INET6 : AF_INET, d.dst_addr().data(),
                                                                           static_cast<uint16_t>(d.dst_port())) +
                                                                      " in " + netns);
    }
    return okStatus();
  });
}

}  // namespace lxmig::net
