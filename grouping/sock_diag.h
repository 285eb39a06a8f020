// Unix sockets of one network namespace from NETLINK_SOCK_DIAG: inode,
// type, state, bound name, peer inode and pending connections. /proc alone
// cannot pair socket ends; the kernel's diag interface can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

namespace lxmig::grouping::internal {

struct UnixSock {
  uint64_t inode = 0;
  uint8_t type = 0;               // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  uint8_t state = 0;              // TCP_ESTABLISHED, TCP_LISTEN, ...
  std::string name;               // "/run/x.sock", "@abstract", "" when unbound
  uint64_t peer = 0;              // 0 when none
  std::vector<uint64_t> pending;  // listener: client inodes not yet accepted
};

// A NETLINK_SOCK_DIAG socket bound to the network namespace behind nsPath
// (/proc/PID/ns/net); opened from a short-lived thread that enters the
// namespace, so no shared thread ever changes namespace.
Result<UniqueFd> openDiagIn(const std::string& nsPath);

// Dumps every Unix socket of the namespace the diag socket belongs to.
Result<std::vector<UnixSock>> dumpUnixSockets(int diagFd);

}  // namespace lxmig::grouping::internal
