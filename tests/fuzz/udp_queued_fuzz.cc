// A peer's queued UDP datagrams (NetState.udp_queued, net/sockets.h): what
// checkQueuedDatagrams accepts is addressed to the container (loopback or
// 10.200.1.10) within the bounds, and each builds a packet whose lengths
// and checksum are right; a refusal is one line.
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/net/sockets.h"

namespace {

uint16_t word(const std::string& p, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[at]) << 8 | static_cast<uint8_t>(p[at + 1]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  lxmig::v1::NetState net;
  if (!net.ParseFromArray(in, static_cast<int>(size))) return 0;
  lxmig::Status st = lxmig::net::checkQueuedDatagrams(net, {"10.200.1.10"});
  if (!st.ok()) {
    LXMIG_FUZZ_CHECK(st.message().find('\n') == std::string::npos);
    return 0;
  }
  LXMIG_FUZZ_CHECK(net.udp_queued_size() <= static_cast<int>(lxmig::net::kMaxQueuedDatagrams));
  uint64_t bytes = 0;
  for (const auto& d : net.udp_queued()) {
    const std::string& dst = d.dst_addr();
    const bool v6 = dst.size() == 16;
    LXMIG_FUZZ_CHECK((v6 && dst == std::string(15, '\0') + '\1') ||
                     (!v6 && (static_cast<uint8_t>(dst[0]) == 127 || dst == std::string("\x0a\xc8\x01\x0a", 4))));
    auto p = lxmig::net::datagramPacket(d);
    LXMIG_FUZZ_CHECK(p.ok());
    const size_t ip = v6 ? 40 : 20;
    LXMIG_FUZZ_CHECK(p->size() == ip + 8 + d.payload().size() && p->size() <= 65535 + (v6 ? 40u : 0u));
    LXMIG_FUZZ_CHECK(word(*p, ip) == d.src_port() && word(*p, ip + 2) == d.dst_port() && d.dst_port() != 0);
    LXMIG_FUZZ_CHECK(word(*p, ip + 4) == 8 + d.payload().size());
    // pseudo header + segment sum to 0xffff
    uint32_t acc = IPPROTO_UDP + static_cast<uint32_t>(8 + d.payload().size());
    auto add = [&acc](const char* s, size_t n) {
      for (size_t i = 0; i < n; i += 2)
        acc +=
            static_cast<uint32_t>(static_cast<uint8_t>(s[i]) << 8 | (i + 1 < n ? static_cast<uint8_t>(s[i + 1]) : 0));
    };
    add(d.src_addr().data(), d.src_addr().size());
    add(dst.data(), dst.size());
    add(p->data() + ip, p->size() - ip);
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    LXMIG_FUZZ_CHECK(acc == 0xffff);
    bytes += d.payload().size();
  }
  LXMIG_FUZZ_CHECK(bytes <= lxmig::net::kMaxQueuedBytes);
  return 0;
}
