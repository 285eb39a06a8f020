// Per-container nftables rules in one lxmig-owned table (libnftables).
//
// The node's table `inet lxmig` holds a forward base chain, a verdict map
// from container address to the container's own chain, and one chain
// `in-NAME` per container with the operator's rules for traffic TO that
// container:
//
//   table inet lxmig {
//     map inbound { type ipv4_addr : verdict; }      # 10.200.1.10 : jump in-web
//     set blocked { type ipv4_addr; }                # containers being migrated away
//     set silenced { type ipv4_addr; }               # ... and frozen by now
//     set forwarding { type ipv4_addr; flags timeout; }  # containers that just left
//     chain hold { type filter hook prerouting priority mangle;
//       ip daddr @blocked ip daddr != @forwarding queue num 4242 }  # held while frozen
//     chain forward { type filter hook forward priority filter; policy drop;
//       ip saddr @silenced drop                      # nothing of a frozen copy leaves,
//       ip daddr @forwarding accept                  # on to the container's new node
//       ip daddr @blocked drop                       # not even its RSTs when it is destroyed
//       ct state established,related accept          # strict nodes only
//       ct state invalid drop                        # strict nodes only
//       ip daddr vmap @inbound
//       iifname "lxbr0" accept }                     # containers may connect out
//     chain in-web { tcp dport 80 accept }
//   }
//
// A container's chain and map element are what migrates: exported as JSON
// on the source, applied on the target in one nftables transaction (all or
// nothing), removed from the source on commit. Tables of the operator and
// other containers' chains are never touched.
//
//   LXMIG_ASSIGN_OR_RETURN(auto fw, net::Firewall::open());
//   LXMIG_RETURN_IF_ERROR(fw.ensureBase({.strict = true, .bridge = "lxbr0"}));
//   LXMIG_ASSIGN_OR_RETURN(auto rule, fw.addRule("web", "tcp dport 80 accept"));
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

struct nft_ctx;

namespace lxmig::net {

struct FirewallBase {
  // Strict: the forward policy is drop; only established/related flows,
  // the containers' own outgoing connections and what a container's chain
  // accepts pass. Open: policy accept, container chains may still drop.
  bool strict = false;
  std::string bridge;  // the node's container bridge (outgoing traffic)
  // NFQUEUE number where packets for blocked addresses wait (net/hold.h);
  // -1: they are dropped.
  int holdQueue = -1;
};

struct FirewallRule {
  uint64_t handle = 0;  // nftables rule handle on this node (changes when the container moves)
  std::string text;     // as `nft list` prints it
};

class Firewall {
 public:
  // table: name of the lxmig-owned inet table ("lxmig").
  static Result<Firewall> open(std::string table = "lxmig");
  Firewall(Firewall&&) noexcept;
  Firewall& operator=(Firewall&&) noexcept;
  ~Firewall();

  // Creates the table, the map and the forward chain, and replaces the
  // forward chain's rules by the base policy, in one transaction.
  Status ensureBase(const FirewallBase& base);
  // Creates the container's (empty) chain and its map element. Idempotent.
  Status addContainer(const std::string& name, const std::string& ip);
  // Removes the container's chain and every map element that jumps to it.
  // Missing is success.
  Status removeContainer(const std::string& name);
  // Nothing forwarded to ip passes, established or not, until unblock:
  // from the freeze of a migration until the source copy is gone (commit)
  // or runs again (abort). Packets to ip wait in the hold queue when the
  // base has one, else they are dropped; a forwarding of ip ends.
  // Idempotent. A migration blocks just before it freezes the container,
  // so that no handshake starts with a copy that is about to freeze.
  Status block(const std::string& ip);
  // Nothing forwarded from ip passes either, until unblock: the frozen
  // copy's packets, not even its RSTs when it is destroyed at commit (the
  // flows continue on the target). After the freeze, so that what the
  // container sent before it still leaves.
  Status silence(const std::string& ip);
  // Its packets leave again (incoming ones stay held): while the copy is
  // thawed for a moment to accept connections, its answers go out.
  Status unsilence(const std::string& ip);
  Status unblock(const std::string& ip);
  Result<std::vector<std::string>> blocked();
  // Packets for ip pass the forward chain for `seconds` (a container that
  // left: the node routes its address toward its new node meanwhile), and
  // are no longer held while ip is blocked.
  Status forwardFor(const std::string& ip, int seconds);
  // The address is this node's again (it came back): its chain applies.
  Status endForwarding(const std::string& ip);

  // Names of the containers that have a chain in the table.
  Result<std::vector<std::string>> containers();

  // One rule in nft syntax for the container's chain ("tcp dport 80
  // accept"). InvalidArgument with nft's one-line reason when malformed;
  // nothing changes then.
  Result<FirewallRule> addRule(const std::string& name, const std::string& rule);
  Status deleteRule(const std::string& name, uint64_t handle);
  Result<std::vector<FirewallRule>> listRules(const std::string& name);

  // The container's chain and map element as a JSON document of our own
  // envelope ({"container", "ip", "rules": [libnftables rule objects]}).
  Result<std::string> exportContainer(const std::string& name, const std::string& ip);
  // Applies a document a peer exported for container `name` at `ip` (the
  // migration's, never the document's own idea of them) atomically: the
  // chain is created (or emptied), filled and linked in one nftables
  // transaction. What the peer sent is checked first (importBatch).
  Status importContainer(const std::string& name, const std::string& ip, const std::string& exported);

  const std::string& table() const { return table_; }
  // Whether ensureBase put the hold queue in place; if not, why.
  bool holds() const { return holds_; }
  const std::string& holdError() const { return holdError_; }

 private:
  Firewall(nft_ctx* ctx, std::string table);
  // Runs nft commands, returns stdout. json: JSON output, and JSON input
  // (libnftables 1.0.6 parses JSON input only with the JSON output flag).
  Result<std::string> run(const std::string& cmd, bool json, bool echo = false);
  // ip out of the named set, if it is there; `what` starts the error.
  Status takeOut(const std::string& set, const std::string& ip, const std::string& what);

  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  std::string table_;
  bool holds_ = false;
  std::string holdError_;
};

// Whether a container name can name an nftables chain (the CLI validates
// names earlier; this guards the command strings built here).
bool validChainSuffix(const std::string& name);

// The nftables JSON batch that installs an exported document as the chain
// of container `name` at `ip` in `table` (replaceElement: another element
// for `ip` is in the inbound map and goes). The document comes from a peer:
// it must name the same container and address, hold at most 1,000 rules of
// plain statements (match, counter, accept, drop, reject, return, log,
// limit, quota, and setting a mark), and refer to no named set or other
// chain; one line says what it broke. Pure: no kernel, fuzzed.
Result<std::string> importBatch(const std::string& table, const std::string& name, const std::string& ip,
                                const std::string& exported, bool replaceElement);

// The same exported document for a container that goes by `name` now (a
// checkpoint restored under another name); its rules are left as they are,
// for importBatch to check. Pure.
Result<std::string> renameExport(const std::string& exported, const std::string& name);

}  // namespace lxmig::net
