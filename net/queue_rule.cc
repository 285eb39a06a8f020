#include "queue_rule.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <poll.h>

#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"

namespace lxmig::net {
namespace {

using Socket = UniqueHandle<mnl_socket, mnl_socket_close>;

void putBatchMarker(std::vector<char>& buf, size_t& used, uint16_t type, uint32_t seq) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data() + used);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
  used += NLMSG_ALIGN(nlh->nlmsg_len);
}

// One expression: its name and, nested, its attributes.
template <typename Fill>
void putExpr(nlmsghdr* nlh, const char* name, Fill fill) {
  nlattr* elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
  mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, name);
  nlattr* data = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
  fill();
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, elem);
}

}  // namespace

Status appendCompatQueueRule(const std::string& table, const std::string& chain, const std::string& matchSet,
                             const std::string& exceptSet, uint16_t queue) {
  Socket s(mnl_socket_open(NETLINK_NETFILTER));
  if (!s) return Status::fromErrno("open netlink socket", "nf_tables");
  if (mnl_socket_bind(s.get(), 0, MNL_SOCKET_AUTOPID) < 0) return Status::fromErrno("bind netlink socket", "nf_tables");
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 2);
  size_t used = 0;
  const uint32_t seq = static_cast<uint32_t>(monotonicNs());
  putBatchMarker(buf, used, NFNL_MSG_BATCH_BEGIN, seq);

  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data() + used);
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK;
  nlh->nlmsg_seq = seq + 1;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = NFPROTO_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table.c_str());
  mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain.c_str());
  nlattr* exprs = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
  // meta nfproto ipv4
  putExpr(nlh, "meta", [&] {
    mnl_attr_put_u32(nlh, NFTA_META_KEY, htonl(NFT_META_NFPROTO));
    mnl_attr_put_u32(nlh, NFTA_META_DREG, htonl(NFT_REG_1));
  });
  putExpr(nlh, "cmp", [&] {
    mnl_attr_put_u32(nlh, NFTA_CMP_SREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_CMP_OP, htonl(NFT_CMP_EQ));
    nlattr* d = mnl_attr_nest_start(nlh, NFTA_CMP_DATA);
    const uint8_t ipv4 = NFPROTO_IPV4;
    mnl_attr_put(nlh, NFTA_DATA_VALUE, 1, &ipv4);
    mnl_attr_nest_end(nlh, d);
  });
  // ip daddr: 4 bytes at offset 16 of the network header
  putExpr(nlh, "payload", [&] {
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_DREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_BASE, htonl(NFT_PAYLOAD_NETWORK_HEADER));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_OFFSET, htonl(16));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_LEN, htonl(4));
  });
  putExpr(nlh, "lookup", [&] {
    mnl_attr_put_strz(nlh, NFTA_LOOKUP_SET, matchSet.c_str());
    mnl_attr_put_u32(nlh, NFTA_LOOKUP_SREG, htonl(NFT_REG_1));
  });
  putExpr(nlh, "lookup", [&] {
    mnl_attr_put_strz(nlh, NFTA_LOOKUP_SET, exceptSet.c_str());
    mnl_attr_put_u32(nlh, NFTA_LOOKUP_SREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_LOOKUP_FLAGS, htonl(NFT_LOOKUP_F_INV));
  });
  // xt NFQUEUE v3: queue number, one queue, no bypass (no listener: dropped)
  putExpr(nlh, "target", [&] {
    mnl_attr_put_strz(nlh, NFTA_TARGET_NAME, "NFQUEUE");
    mnl_attr_put_u32(nlh, NFTA_TARGET_REV, htonl(3));
    xt_NFQ_info_v3 info{};
    info.queuenum = queue;
    info.queues_total = 1;
    mnl_attr_put(nlh, NFTA_TARGET_INFO, sizeof info, &info);
  });
  mnl_attr_nest_end(nlh, exprs);
  used += NLMSG_ALIGN(nlh->nlmsg_len);
  putBatchMarker(buf, used, NFNL_MSG_BATCH_END, seq + 2);

  if (mnl_socket_sendto(s.get(), buf.data(), used) < 0)
    return Status::fromErrno("send nf_tables batch", "table " + table);
  // The answer to the rule: an ack, or its error.
  const int fd = mnl_socket_get_fd(s.get());
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 2000) <= 0) return deadlineExceeded("nf_tables: no answer to the hold rule");
  std::vector<char> in(MNL_SOCKET_BUFFER_SIZE);
  const ssize_t n = mnl_socket_recvfrom(s.get(), in.data(), in.size());
  if (n < 0) return Status::fromErrno("read nf_tables answer", "table " + table);
  if (mnl_cb_run(in.data(), n, seq + 1, mnl_socket_get_portid(s.get()), nullptr, nullptr) < 0)
    return Status::fromErrno("add the NFQUEUE rule (nft_compat) to", "chain " + table + " " + chain);
  return okStatus();
}

}  // namespace lxmig::net
