// NFQUEUE messages (net::parseQueuedPackets): the kernel writes them, but
// each carries the first bytes of a packet from the network. Whatever the
// buffer, parsing stays inside it, finds at most one packet per message
// (a message takes at least 16 bytes), and a packet's destination is read
// only from an IPv4 header.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_check.h"
#include "lxmig/net/hold.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy with the alignment netlink buffers have.
  alignas(8) static uint8_t buf[1 << 16];
  if (size > sizeof buf) return 0;
  std::memcpy(buf, data, size);
  const auto packets = lxmig::net::parseQueuedPackets(buf, size);
  LXMIG_FUZZ_CHECK(packets.size() <= size / 16);
  return 0;
}
