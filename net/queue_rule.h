// The hold chain's rule built as netlink messages, for kernels without
// nftables' `queue` expression (CONFIG_NFT_QUEUE unset, as here): the same
// match (ip daddr @blocked ip daddr != @forwarding) with the xtables
// NFQUEUE target through nft_compat (CONFIG_NFT_COMPAT and
// CONFIG_NETFILTER_XT_TARGET_NFQUEUE), the way iptables-nft writes it.
// Private to net/.
#pragma once

#include <cstdint>
#include <string>

#include "lxmig/base/status.h"

namespace lxmig::net {

// Appends the rule to chain `chain` of inet table `table`, in one batch.
Status appendCompatQueueRule(const std::string& table, const std::string& chain, const std::string& matchSet,
                             const std::string& exceptSet, uint16_t queue);

}  // namespace lxmig::net
