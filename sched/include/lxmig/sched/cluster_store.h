// The cluster store: who is in the cluster, and locks that span it.
//
// The embedded default is the static inventory file (cluster.toml's
// [node.NAME] tables) and host-local locks. With a [store] table naming
// etcd, every agent registers itself under a lease of `ttl` seconds that it
// renews (a node whose agent dies or is cut off drops out of the inventory
// after the TTL), and cluster-wide locks (the rebalancer's run, a
// container's move) are etcd keys bound to the holder's lease, so a holder
// that dies releases them. Only agents talk to etcd; the CLI asks its agent
// (rpc Members, rpc Hold).
//
//   cluster.toml:  [store]
//                  etcd = "http://10.0.0.5:2379,http://10.0.0.6:2379"
//                  etcd_ca = "/etc/lxmig/etcd-ca.pem"     # https endpoints
//                  etcd_cert = "..."  etcd_key = "..."    # client certificate
//                  ttl = "10"                             # seconds, 3..300
//
//   auto m = Membership::start(store, "n1", "10.0.0.11:7443");
//   auto live = (*m)->members();              // name -> peer address
//   auto holder = (*m)->lock("rebalance", "n1 pid 42");   // "" when ours
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::sched {

struct StoreConfig {
  std::vector<std::string> etcd;  // "http://host:port" or "https://host:port"
  std::string ca, cert, key;      // PEM files for https endpoints
  int ttlSeconds = 10;
  bool enabled() const { return !etcd.empty(); }
  // From the [store] table's values; one-line errors naming the value.
  static Result<StoreConfig> fromValues(const std::string& etcd, const std::string& ca, const std::string& cert,
                                        const std::string& key, const std::string& ttl);
};

class Etcd;

// This agent's registration and its locks. A thread it owns registers the
// node, renews the lease every third of the TTL and registers again when
// the lease was lost (etcd unreachable for longer than the TTL); locks held
// under a lost lease are gone with it, and are reported so. The same
// thread reads the membership every second, so that reading it never waits
// for etcd (a peer's certificate is checked against it inside a
// migration's frozen window).
class Membership {
 public:
  // Never fails for an unreachable etcd (the thread keeps trying); only for
  // a bad configuration. `address` is the node's peer address (host:port).
  static Result<std::unique_ptr<Membership>> start(const StoreConfig& cfg, const std::string& node,
                                                   const std::string& address);
  // Leaves the cluster at once (revokes the lease: its keys, the node's
  // entry and its locks, are deleted) and joins the thread.
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Every registered node, name -> peer address, as last read (at most a
  // second ago while etcd answers); entries that break the grammar (anyone
  // who can write to etcd can write them) are left out and logged.
  struct Snapshot {
    std::map<std::string, std::string> members;
    bool read = false;  // etcd answered at least once
    std::string error;  // why the last read failed ("" when it did not)
  };
  Snapshot snapshot() const;
  // The same, Unavailable when the last read failed or none was made yet.
  Result<std::map<std::string, std::string>> members() const;
  // Takes lock `name` (letters, digits, '-', '_', '.', '/') for `holder` (plain text) under this
  // node's lease: "" when taken, else who holds it. Unavailable while the
  // node is not registered.
  Result<std::string> lock(const std::string& name, const std::string& holder);
  // Releases it when `holder` still holds it.
  Status unlock(const std::string& name, const std::string& holder);
  // Whether the node is registered under a live lease right now.
  bool registered() const;
  // How many times the lease was lost and the node registered again.
  int64_t reRegistrations() const;

 private:
  Membership(const StoreConfig& cfg, std::string node, std::string address, std::unique_ptr<Etcd> etcd);
  void run();
  // Registers under a new lease; false when etcd did not take it.
  bool registerNode();
  // Reads the members into snapshot_.
  void refreshMembers();

  StoreConfig cfg_;
  std::string node_;
  std::string address_;
  std::unique_ptr<Etcd> etcd_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int64_t lease_ = 0;  // 0: not registered
  int64_t lost_ = 0;
  Snapshot snapshot_;
  std::thread thread_;
};

// Key of a lock and of a node's entry (for tests and messages).
std::string lockKey(const std::string& name);
std::string nodeKey(const std::string& node);

}  // namespace lxmig::sched
