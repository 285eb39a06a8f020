// A container's TCP and UDP sockets as its network namespace's kernel sees
// them (sock_diag), and what CRIU 4.2.1 leaves behind of them:
// - a connection waiting in a listener's accept queue is dropped by the
//   dump (`--skip-in-flight`, which liblxc always passes): its client
//   would wait for an answer that never comes. Such a listener is named
//   so the migration can be refused before the freeze, and checked again
//   once the container is frozen;
// - the datagrams queued in a UDP socket are not dumped at all. The
//   source reads them at the freeze without taking them (MSG_PEEK through
//   SO_PEEK_OFF, so an abort leaves the queue as it was) and the target
//   puts them back before the container resumes, sent from a raw socket in
//   the container's namespace with their original source address, in
//   order.
//
//   LXMIG_ASSIGN_OR_RETURN(auto waiting, net::unacceptedConnections("/proc/812/ns/net", pids));
//   LXMIG_ASSIGN_OR_RETURN(auto queued, net::peekUdpQueues("/proc/812/ns/net", pids));
//   ... into NetState.udp_queued; on the target, restored and still frozen:
//   LXMIG_RETURN_IF_ERROR(net::checkQueuedDatagrams(net, ownIps));
//   LXMIG_RETURN_IF_ERROR(net::requeueDatagrams("/proc/977/ns/net", net));
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/v1/net.pb.h"

namespace lxmig::net {

// Bounds on what a migration carries of UDP queues (more is left out and
// counted: a datagram can always be lost, and a receive buffer that full
// would have dropped the next ones anyway).
inline constexpr size_t kMaxQueuedDatagrams = 65536;
inline constexpr uint64_t kMaxQueuedBytes = 8ull << 20;

struct InetSocket {
  int family = 0;       // AF_INET, AF_INET6 (AF_UNIX: unacceptedConnections)
  int protocol = 0;     // IPPROTO_TCP, IPPROTO_UDP
  int state = 0;        // TCP_* (a UDP socket is TCP_CLOSE, or TCP_ESTABLISHED when connected)
  std::string local;    // "127.0.0.1:4000", "[::1]:4000"
  uint32_t rqueue = 0;  // listener: connections waiting to be accepted; UDP: bytes queued
  uint64_t inode = 0;
};

// The sockets of `protocol` in the network namespace at `netns` whose state
// is in `states` (a mask of 1 << TCP_*).
Result<std::vector<InetSocket>> inetSockets(const std::string& netns, int protocol, uint32_t states);

// A socket and one of `pids` holding it (pid 0: none of them does).
struct HeldSocket {
  InetSocket socket;
  pid_t pid = 0;
  int fd = -1;
};

// The TCP and Unix stream listeners of the namespace with connections
// waiting in their accept queue (family AF_UNIX: `local` is the path, or
// @name for an abstract one). CRIU drops a waiting TCP connection, and
// fails on a waiting Unix one that holds data.
Result<std::vector<HeldSocket>> unacceptedConnections(const std::string& netns, const std::vector<pid_t>& pids);

// The datagrams queued in the UDP sockets of the namespace that `pids`
// hold, in each socket's order, read without being taken (call it with the
// processes frozen). Past kMaxQueued* the rest is counted in
// `udp_left_out` of the result.
Result<v1::NetState> peekUdpQueues(const std::string& netns, const std::vector<pid_t>& pids);

// Whether every queued datagram of `net` is well formed (address sizes,
// ports, payload sizes, the bounds above) and addressed to the container:
// a loopback address or one of `ownIps` (IPv4 dotted quads). A peer must
// not make a node send what it likes.
Status checkQueuedDatagrams(const v1::NetState& net, const std::vector<std::string>& ownIps);

// The IP packet (header, UDP header with its checksum, payload) that
// delivers `d`; InvalidArgument for a malformed datagram.
Result<std::string> datagramPacket(const v1::QueuedDatagram& d);

// Delivers the datagrams of `net` (checked) inside the namespace at `netns`.
Status requeueDatagrams(const std::string& netns, const v1::NetState& net);

}  // namespace lxmig::net
