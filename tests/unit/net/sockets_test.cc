// net/sockets.h: the packets that put a UDP queue back, the checks on a
// peer's datagrams, and (as root) a queue peeked and put back in a private
// network namespace of the kernel's.
#include "lxmig/net/sockets.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "prerequisite.h"

namespace lxmig::net {
namespace {

std::string v4(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return std::string(reinterpret_cast<const char*>(&a), 4);
}

std::string v6(const char* text) {
  in6_addr a{};
  ::inet_pton(AF_INET6, text, &a);
  return std::string(reinterpret_cast<const char*>(&a), 16);
}

v1::QueuedDatagram datagram(const std::string& src, uint32_t sport, const std::string& dst, uint32_t dport,
                            const std::string& payload) {
  v1::QueuedDatagram d;
  d.set_src_addr(src);
  d.set_src_port(sport);
  d.set_dst_addr(dst);
  d.set_dst_port(dport);
  d.set_payload(payload);
  return d;
}

// The UDP checksum over pseudo header and segment sums to 0xffff.
uint16_t verify(const std::string& src, const std::string& dst, const std::string& segment) {
  uint32_t acc = 0;
  auto add = [&acc](const std::string& s) {
    for (size_t i = 0; i < s.size(); i += 2)
      acc += static_cast<uint32_t>(static_cast<uint8_t>(s[i]) << 8 |
                                   (i + 1 < s.size() ? static_cast<uint8_t>(s[i + 1]) : 0));
  };
  add(src);
  add(dst);
  add(segment);
  acc += IPPROTO_UDP + static_cast<uint32_t>(segment.size());
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

TEST(DatagramPacket, Ipv4HeaderAndChecksum) {
  auto p = datagramPacket(datagram(v4("127.0.0.1"), 40000, v4("10.200.1.10"), 53, "hello"));
  ASSERT_TRUE(p.ok()) << p.status().toString();
  ASSERT_EQ(p->size(), 20u + 8 + 5);
  EXPECT_EQ(static_cast<uint8_t>((*p)[0]), 0x45);
  EXPECT_EQ(static_cast<uint8_t>((*p)[9]), IPPROTO_UDP);
  EXPECT_EQ(p->substr(12, 4), v4("127.0.0.1"));
  EXPECT_EQ(p->substr(16, 4), v4("10.200.1.10"));
  EXPECT_EQ(static_cast<uint8_t>((*p)[20]) << 8 | static_cast<uint8_t>((*p)[21]), 40000);
  EXPECT_EQ(static_cast<uint8_t>((*p)[22]) << 8 | static_cast<uint8_t>((*p)[23]), 53);
  EXPECT_EQ(p->substr(28), "hello");
  EXPECT_EQ(verify(v4("127.0.0.1"), v4("10.200.1.10"), p->substr(20)), 0xffff);
}

TEST(DatagramPacket, Ipv6HeaderAndChecksum) {
  auto p = datagramPacket(datagram(v6("::1"), 7, v6("::1"), 9000, std::string(1001, 'x')));
  ASSERT_TRUE(p.ok()) << p.status().toString();
  ASSERT_EQ(p->size(), 40u + 8 + 1001);
  EXPECT_EQ(static_cast<uint8_t>((*p)[0]), 0x60);
  EXPECT_EQ(static_cast<uint8_t>((*p)[6]), IPPROTO_UDP);
  EXPECT_EQ(verify(v6("::1"), v6("::1"), p->substr(40)), 0xffff);
}

TEST(DatagramPacket, MalformedIsRefusedInOneLine) {
  for (const auto& d :
       {datagram(v4("127.0.0.1"), 1, v6("::1"), 2, ""), datagram("abc", 1, "abc", 2, ""),
        datagram(v4("127.0.0.1"), 1, v4("127.0.0.1"), 0, ""), datagram(v4("127.0.0.1"), 70000, v4("127.0.0.1"), 2, ""),
        datagram(v4("127.0.0.1"), 1, v4("127.0.0.1"), 2, std::string(65508, 'x'))}) {
    auto p = datagramPacket(d);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().message().find('\n'), std::string::npos) << p.status().message();
  }
}

TEST(CheckQueuedDatagrams, OnlyTheContainersAddresses) {
  v1::NetState net;
  *net.add_udp_queued() = datagram(v4("192.0.2.1"), 5, v4("127.0.0.1"), 53, "a");
  *net.add_udp_queued() = datagram(v4("192.0.2.1"), 5, v4("10.200.1.10"), 53, "b");
  *net.add_udp_queued() = datagram(v6("2001:db8::1"), 5, v6("::1"), 53, "c");
  EXPECT_TRUE(checkQueuedDatagrams(net, {"10.200.1.10"}).ok());
  *net.add_udp_queued() = datagram(v4("127.0.0.1"), 5, v4("10.200.1.11"), 53, "d");
  Status st = checkQueuedDatagrams(net, {"10.200.1.10"});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("10.200.1.11:53"), std::string::npos) << st.message();
  net.mutable_udp_queued()->RemoveLast();
  *net.add_udp_queued() = datagram(v4("127.0.0.1"), 5, v4("8.8.8.8"), 53, "e");
  EXPECT_FALSE(checkQueuedDatagrams(net, {"10.200.1.10"}).ok());
}

TEST(CheckQueuedDatagrams, Bounds) {
  v1::NetState net;
  for (int i = 0; i < 130; ++i)
    *net.add_udp_queued() = datagram(v4("127.0.0.1"), 5, v4("127.0.0.1"), 53, std::string(65000, 'x'));
  Status st = checkQueuedDatagrams(net, {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("more than a migration carries"), std::string::npos) << st.message();
}

// Moves this (child) process into a network namespace of its own with
// loopback up; 0, or the step that failed.
int ownNetns() {
  if (::unshare(CLONE_NEWNET) != 0) return 10;
  int ctl = ::socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP;
  return ::ioctl(ctl, SIOCSIFFLAGS, &ifr) == 0 ? 0 : 11;
}

// In a child with a network namespace of its own: datagrams queued on a
// socket are peeked (still there, same order), taken, then put back from
// a raw socket and received again with their sender. Exit code = the step
// that failed.
int roundTrip() {
  if (int rc = ownNetns()) return rc;
  int r = ::socket(AF_INET6, SOCK_DGRAM, 0), s4 = ::socket(AF_INET, SOCK_DGRAM, 0),
      s6 = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;  // dual stack, any address
  socklen_t al = sizeof a;
  if (::bind(r, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 12;
  ::getsockname(r, reinterpret_cast<sockaddr*>(&a), &al);
  sockaddr_in to4{};
  to4.sin_family = AF_INET;
  to4.sin_port = a.sin6_port;
  to4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in6 to6 = a;
  to6.sin6_addr = in6addr_loopback;
  const char* msgs[] = {"one", "", "three three", "four"};
  for (int i = 0; i < 4; ++i) {
    const bool six = i % 2;
    if (::sendto(six ? s6 : s4, msgs[i], std::strlen(msgs[i]), 0,
                 six ? reinterpret_cast<sockaddr*>(&to6) : reinterpret_cast<sockaddr*>(&to4),
                 six ? sizeof to6 : sizeof to4) < 0)
      return 13;
  }
  auto net = peekUdpQueues("/proc/self/ns/net", {::getpid()});
  if (!net.ok() || net->udp_queued_size() != 4 || net->udp_left_out() != 0) return 14;
  if (!checkQueuedDatagrams(*net, {}).ok()) return 15;
  int peekOff = 0;
  socklen_t pl = sizeof peekOff;
  if (::getsockopt(r, SOL_SOCKET, SO_PEEK_OFF, &peekOff, &pl) != 0 || peekOff != -1) return 16;  // put back
  auto readAll = [&](int code) {
    for (int i = 0; i < 4; ++i) {
      char b[64];
      sockaddr_in6 from{};
      socklen_t fl = sizeof from;
      ssize_t n = ::recvfrom(r, b, sizeof b, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n != static_cast<ssize_t>(std::strlen(msgs[i])) || std::memcmp(b, msgs[i], n) != 0) return code + i;
      sockaddr_in6 self{};
      socklen_t sl = sizeof self;
      ::getsockname(i % 2 ? s6 : s4, reinterpret_cast<sockaddr*>(&self), &sl);
      if (from.sin6_port != self.sin6_port) return code + 10 + i;  // the sender's port (same offset in both)
    }
    char b[8];
    return ::recv(r, b, sizeof b, MSG_DONTWAIT) < 0 ? 0 : code + 20;
  };
  if (int rc = readAll(20)) return rc;  // the peek took nothing
  if (!requeueDatagrams("/proc/self/ns/net", *net).ok()) return 18;
  return readAll(60);
}

TEST(UdpQueues, PeekedAndPutBackInAPrivateNamespace) {
  LXMIG_REQUIRE(::geteuid() == 0, "root (a network namespace and a raw socket)");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(roundTrip());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "step that failed (see roundTrip)";
}

// In a child with a network namespace of its own: a TCP and an abstract
// Unix listener, each with a connection it did not accept, are named with
// their holder; accepted, they are not. Exit code = the step that failed.
int waitingListeners() {
  if (int rc = ownNetns()) return rc;
  auto none = unacceptedConnections("/proc/self/ns/net", {::getpid()});
  if (!none.ok() || !none->empty()) return 12;
  int tl = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (::bind(tl, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(tl, 4) != 0) return 13;
  ::getsockname(tl, reinterpret_cast<sockaddr*>(&a), &al);
  int tc = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(tc, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 14;
  int ul = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::memcpy(u.sun_path, "\0lxmig-test", 11);
  const socklen_t ulen = offsetof(sockaddr_un, sun_path) + 11;
  if (::bind(ul, reinterpret_cast<sockaddr*>(&u), ulen) != 0 || ::listen(ul, 4) != 0) return 15;
  int uc = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (::connect(uc, reinterpret_cast<sockaddr*>(&u), ulen) != 0) return 16;
  auto two = unacceptedConnections("/proc/self/ns/net", {::getpid()});
  if (!two.ok() || two->size() != 2) return 17;
  for (const auto& w : *two) {
    if (w.pid != ::getpid() || w.socket.rqueue != 1) return 18;
    if (w.socket.family == AF_UNIX ? w.socket.local != "@lxmig-test" : w.socket.local.rfind("127.0.0.1:", 0) != 0)
      return 19;
  }
  if (::accept(tl, nullptr, nullptr) < 0 || ::accept(ul, nullptr, nullptr) < 0) return 20;
  auto done = unacceptedConnections("/proc/self/ns/net", {::getpid()});
  return done.ok() && done->empty() ? 0 : 21;
}

TEST(UnacceptedConnections, TcpAndUnixListenersInAPrivateNamespace) {
  LXMIG_REQUIRE(::geteuid() == 0, "root (a network namespace)");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(waitingListeners());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "step that failed (see waitingListeners)";
}

}  // namespace
}  // namespace lxmig::net
