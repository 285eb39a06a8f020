// parseQueuedPackets on messages built as the kernel builds them.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include <cstring>
#include <vector>

#include "lxmig/net/hold.h"

namespace lxmig::net {
namespace {

// Appends one NFQNL_MSG_PACKET message for a packet to `dst` (IPv4 unless
// `proto` says otherwise), with `ipBytes` bytes of its header.
void putPacket(std::vector<char>& buf, uint32_t id, const char* dst, uint16_t proto = 0x0800, size_t ipBytes = 20) {
  const size_t at = buf.size();
  buf.resize(at + 256);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data() + at);
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->res_id = htons(4242);
  nfqnl_msg_packet_hdr ph{htonl(id), htons(proto), 1};
  mnl_attr_put(nlh, NFQA_PACKET_HDR, sizeof ph, &ph);
  uint8_t ip[20] = {0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6};
  in_addr src{}, d{};
  ::inet_pton(AF_INET, "10.99.0.2", &src);
  ::inet_pton(AF_INET, dst, &d);
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &d, 4);
  mnl_attr_put(nlh, NFQA_PAYLOAD, ipBytes, ip);
  buf.resize(at + NLMSG_ALIGN(nlh->nlmsg_len));
}

uint32_t addr(const char* dotted) {
  in_addr a{};
  ::inet_pton(AF_INET, dotted, &a);
  return a.s_addr;
}

TEST(ParseQueuedPackets, IdsAndDestinationsOfEveryMessage) {
  std::vector<char> buf;
  putPacket(buf, 1, "10.200.1.10");
  putPacket(buf, 2, "10.200.1.11");
  auto got = parseQueuedPackets(buf.data(), buf.size());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, 1u);
  EXPECT_EQ(got[0].daddr, addr("10.200.1.10"));
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_EQ(got[1].daddr, addr("10.200.1.11"));
}

TEST(ParseQueuedPackets, NoDestinationUnlessAWholeIpv4Header) {
  std::vector<char> buf;
  putPacket(buf, 5, "10.200.1.10", 0x86dd);      // not IPv4
  putPacket(buf, 6, "10.200.1.10", 0x0800, 12);  // header cut short
  auto got = parseQueuedPackets(buf.data(), buf.size());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].daddr, 0u);
  EXPECT_EQ(got[1].daddr, 0u);
  EXPECT_EQ(got[1].id, 6u);  // still answered (passed on), never kept
}

TEST(ParseQueuedPackets, ACutMessageIsNotReadPastTheBuffer) {
  std::vector<char> buf;
  putPacket(buf, 1, "10.200.1.10");
  putPacket(buf, 2, "10.200.1.11");
  auto got = parseQueuedPackets(buf.data(), buf.size() - 8);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, 1u);
  EXPECT_TRUE(parseQueuedPackets(buf.data(), 10).empty());
}

}  // namespace
}  // namespace lxmig::net
