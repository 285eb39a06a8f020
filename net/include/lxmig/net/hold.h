// Packets held while their container is frozen (NFQUEUE), then sent on.
//
// From the freeze of a migration until its end, a source node must neither
// deliver packets to the frozen copy nor drop them: a dropped SYN costs the
// client its first retransmission (1 s on Linux), a dropped data segment
// its retransmission timeout, both more than the frozen window. The node's
// `hold` chain (prerouting, see Firewall::ensureBase) queues every packet
// for a blocked address to this object; the kernel keeps them, this object
// remembers their ids by address. When the container runs on the target,
// release(ip, kAccept) after the node routes the address toward the target
// sends them there (each is routed anew: the hold is before the routing
// decision); after an abort the same call delivers them to the thawed copy.
//
//   LXMIG_ASSIGN_OR_RETURN(auto hold, net::PacketHold::open(4242));
//   ... firewall.block(ip): packets for ip now wait in the queue ...
//   size_t n = hold->release(ip, net::PacketHold::Verdict::kAccept);
//
// Bounds: the kernel's queue takes kQueueLength packets (more are dropped,
// as without holding), a packet waits at most kMaxHoldMs (then dropped), and
// the netlink socket copies 20 bytes of each packet (its IPv4 header). If
// the agent is gone, the kernel drops what the queue held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::net {

// One packet the kernel queued, as parsed from its netlink message.
struct QueuedPacket {
  uint32_t id = 0;     // the kernel's packet id (host order)
  uint32_t daddr = 0;  // IPv4 destination (network order); 0 when not IPv4
};

// Parses a buffer of netlink messages from an NFQUEUE socket; messages that
// are not queued packets, or malformed, are skipped. Bounded by `len`.
std::vector<QueuedPacket> parseQueuedPackets(const void* buf, size_t len);

class PacketHold {
 public:
  static constexpr uint32_t kQueueLength = 4096;
  static constexpr int64_t kMaxHoldMs = 30'000;

  enum class Verdict { kAccept, kDrop };

  // Binds NFQUEUE `queue` in the caller's network namespace and starts the
  // thread that reads it. Fails when another program holds the queue.
  static Result<std::unique_ptr<PacketHold>> open(uint16_t queue);
  ~PacketHold();  // stops and joins the thread; the kernel drops what is queued
  PacketHold(const PacketHold&) = delete;
  PacketHold& operator=(const PacketHold&) = delete;

  // Ends the hold of ip's packets: each goes on (kAccept: through the rest
  // of the ruleset and the routing table as they are now) or is dropped.
  // With `passFromNow`, packets for ip that reach the queue later pass at
  // once (they were queued before the node stopped queueing them). Returns
  // how many packets were held.
  size_t release(const std::string& ip, Verdict v, bool passFromNow = false);
  // Packets for ip wait again (a new migration of the same address).
  void holdAgain(const std::string& ip);

  struct Stats {
    size_t held = 0;        // packets waiting now
    uint64_t released = 0;  // since open
    uint64_t expired = 0;   // dropped after kMaxHoldMs
  };
  Stats stats() const;
  uint16_t queue() const;

 private:
  struct State;
  explicit PacketHold(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace lxmig::net
