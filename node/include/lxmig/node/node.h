// One node's state: configuration, containers, audit log and peers.
// Thread-safe; every RPC handler works through it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lxmig/container/devices.h"
#include "lxmig/container/lxc_host.h"
#include "lxmig/net/firewall.h"
#include "lxmig/net/hold.h"
#include "lxmig/node/config.h"
#include "lxmig/node/exec.h"
#include "lxmig/node/reservations.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/transport/data_link.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::node {

// What lxmig records about a container in <lxc_path>/<name>/lxmig.json.
struct Spec {
  std::string name, ip, hwaddr, originNode;
  std::vector<std::string> command, env;
  std::vector<container::Bind> binds;
  std::vector<container::devices::DeviceBind> devices;  // lxmig run --device
  int64_t createdMs = 0;
  bool pinned = false;  // lxmig pin
  // Its pid 1 is lxmig-init (container/init.cc): set for containers started
  // by lxmig run and adopt; an older container's pid 1 is its command.
  bool lxmigInit = false;
  // lxmig run: the pid its workload started with, in a range no other
  // container of the cluster was given when it started (0: none).
  uint32_t pidBase = 0;
  // lxmig merge: the addresses of the containers merged into this one,
  // which it answers on too (with `ip`, addresses()).
  std::vector<std::string> extraIps;
  // lxmig run --userns: a user namespace of its own, root inside being
  // host id idmapBase, idmapSize ids mapped (uid and gid alike); 0: none.
  uint32_t idmapBase = 0, idmapSize = 0;

  std::vector<std::string> addresses() const {
    std::vector<std::string> all = {ip};
    all.insert(all.end(), extraIps.begin(), extraIps.end());
    return all;
  }

  v1::ContainerSpec toProto() const;
  static Spec fromProto(const v1::ContainerSpec& p);
  std::string toJson() const;
  // Parsed and checked (check()).
  static Result<Spec> fromJson(const std::string& text);
  // Every field against its grammar (lxmig/base/grammar.h): a spec comes
  // from flags, from a peer or from a file, and its values reach paths, the
  // LXC config and commands. One line naming the first bad value.
  Status check() const;
};

class Node {
 public:
  static Result<std::unique_ptr<Node>> create(const AgentConfig& cfg);

  const AgentConfig& config() const { return cfg_; }
  container::LxcHost& lxc() { return lxc_; }
  store::AuditLog& audit() { return *audit_; }
  std::string imagesRoot() const { return cfg_.stateDir + "/images"; }
  // Images a target stages on disk when imagesRoot's tmpfs is short; empty:
  // none (images_disk_dir = "off").
  std::string imagesDiskRoot() const;
  std::string incomingRoot() const { return cfg_.stateDir + "/incoming"; }

  // Containers.
  Result<v1::ContainerInfo> run(const v1::RunContainerRequest& req);
  // A container whose init is lxmig-init (LxcHost::kInitPath, installed in
  // its writable area), for processes that arrive after it starts (lxmig
  // adopt); `held` is the caller's reservation of the name. The request's
  // command is ignored.
  Result<v1::ContainerInfo> runWithInit(const v1::RunContainerRequest& req, const Reservation& held);
  Status remove(const std::string& name);
  // Starts req.command in the running container req.name (node/exec.h).
  Result<ExecSession> startExec(const v1::ExecRequest& req);
  std::vector<v1::ContainerInfo> list();
  Result<v1::ContainerInfo> info(const std::string& name);
  Result<Spec> spec(const std::string& name);
  Status saveSpec(const Spec& s);
  // lxmig pin / unpin; returns whether it was pinned before.
  Result<bool> setPinned(const std::string& name, bool pinned);
  // LXC parameters of a container (device binds with their cgroup rules as
  // the spec names them: PREPARE rewrote them to this node's devices).
  container::ContainerParams paramsFor(const Spec& s) const;
  // Devices this node offers to containers (agent config `devices`).
  Result<std::vector<container::devices::Device>> deviceOffer() const;
  // What a container of this node needs, from its spec, config and processes.
  Result<std::vector<container::devices::Device>> deviceNeeds(const std::string& name);
  // Routes the container's address here (after start or restore).
  Status claimAddress(const Spec& s);
  Status releaseAddress(const Spec& s);
  // The container's addresses left this node with it (a committed
  // migration): until every peer answers without them, allocateIp hands
  // none of them out again (kept in <state>/addresses-away).
  void addressesLeft(const Spec& s);
  // The node's lxmig nftables table (net::Firewall is thread-safe).
  net::Firewall& firewall() { return *fw_; }
  // A container's traffic while it is frozen for a migration or a merge.
  // holdTraffic: nothing reaches or leaves it; packets for it wait in the
  // hold queue (agent config hold_queue; dropped when off). resumeTraffic:
  // not blocked any more; what waited goes on through the node's routes as
  // they are now (to the copy here after an abort, or the container that
  // took the address over after a merge). forwardTraffic: it runs on
  // `toNode` now; the address is routed there for kForwardSeconds (the
  // waiting packets and clients that missed the gratuitous ARP follow it);
  // returns how many packets had waited. expireForwarding, called now and
  // then, withdraws such routes when their time is up.
  static constexpr int kForwardSeconds = 60;
  Status holdTraffic(const std::string& ip);
  // What the container sends is dropped too (once it is frozen).
  Status silenceTraffic(const std::string& ip) { return fw_->silence(ip); }
  Status unsilenceTraffic(const std::string& ip) { return fw_->unsilence(ip); }
  Status resumeTraffic(const std::string& ip);
  // Not blocked any more, the copy here is gone: what still waited (not
  // forwarded) is dropped.
  Status forgetTraffic(const std::string& ip);
  Result<size_t> forwardTraffic(const Spec& s, const std::string& toNode);
  void expireForwarding();
  // Drops what the node holds for a container's network besides its route:
  // its firewall chain and its conntrack entries. Errors are logged.
  void dropNetState(const Spec& s);

  // A name is busy while it is created, removed or migrated; busy names
  // refuse other operations with FailedPrecondition.
  Result<Reservation> reserve(const std::string& name, const std::string& why,
                              ReservationKind kind = ReservationKind::kOther) {
    return reservations_.reserve(name, why, kind);
  }
  Reservations& reservations() { return reservations_; }

  // Memory still arriving: after a lazy restore, CRIU's lazy-pages daemon
  // fills the container's memory from local images while it runs. Until it
  // is done, pages not yet filled are absent from the page tables, so a dump
  // (the next migration) would save them as holes and the workload would
  // lose them. A marker in <state_dir>/fills/<name> records the daemon, so
  // an agent restarted meanwhile (the daemon survives it) still knows.
  struct MemoryFill {
    std::string migrationId;
    pid_t pid = -1;
  };
  Status beginMemoryFill(const std::string& name, const std::string& migrationId, pid_t daemon,
                         const std::string& imagesDir);
  void endMemoryFill(const std::string& name);
  // The fill running for a container, if any (a marker whose daemon is gone
  // is removed).
  std::optional<MemoryFill> memoryFill(const std::string& name);

  // A migration left a container frozen (its target did not confirm the
  // abort): the agent settles it in the background (resolveFrozen).
  void requestFrozenCheck() { frozenCheck_ = true; }
  bool takeFrozenCheck() { return frozenCheck_.exchange(false); }

  // Peers, by node name: a stub over mutual TLS (or the node's local socket
  // when the cluster file names one and it is on this machine).
  Result<std::unique_ptr<v1::Peer::Stub>> peer(const std::string& node);
  // The node of the inventory a peer's certificate names (`names`: its DNS
  // subjectAltNames and common name, as the TLS layer reports them; `via`
  // says where it came: "peer port", "data link"). PermissionDenied for a
  // certificate that names no node (or more than one, or this node itself),
  // recorded as a node event in the audit.
  Result<std::string> identifyPeer(const std::vector<std::string>& names, const std::string& via);
  // The containers a peer runs (its own only), within `seconds`.
  Result<v1::ListContainersReply> peerContainers(const std::string& node, int seconds);
  std::vector<std::string> peerNames() const;
  // The cluster's nodes: the cluster file's, and with a cluster store the
  // ones registered under a live lease (its address wins over the file's),
  // as the store was last read (every second); when etcd does not answer,
  // the last answer stands and `storeError` says why.
  struct Inventory {
    std::map<std::string, PeerInfo> nodes;
    std::set<std::string> live;    // registered in the store
    std::set<std::string> inFile;  // listed in the cluster file
    std::string storeError;
  };
  Inventory inventory() const;
  // The cluster store's membership of this node (null without a store).
  sched::Membership* membership() const { return membership_.get(); }
  // The host part of a peer's address (where its data link listens too).
  Result<std::string> peerHost(const std::string& node) const;
  std::shared_ptr<grpc::ServerCredentials> serverCredentials() const;
  transport::TlsIdentity tlsIdentity() const {
    return {caPem_, certPem_, keyPem_, cfg_.dataLinkCipher == "aes-128-gcm"};
  }
  // The port this agent's data link listens on; 0: none (told to sources
  // in PREPARE, so they use the Transfer RPC).
  uint16_t dataPort() const { return dataPort_; }
  void setDataPort(uint16_t port) { dataPort_ = port; }

  v1::NodeInfo nodeInfo();
  // Samples the CPU time of every container (the agent calls it every few
  // seconds): nodeInfo() reports each container's rate over the window
  // between the last two samples.
  void sampleLoad();

 private:
  explicit Node(AgentConfig cfg) : cfg_(std::move(cfg)), lxc_(cfg_.lxcPath, cfg_.cgroupParent) {}
  // A free address for a new container; AlreadyExists when a reachable peer
  // already runs a container of that name (an unreachable one is skipped
  // with a warning: PREPARE still refuses a name taken on the target). An
  // address that left this node is free again only when every peer answered
  // and none holds it.
  Result<std::string> allocateIp(const std::string& forName);
  // The first pid of a new container's workload (Spec::pidBase).
  uint32_t pickPidBase(const std::string& forName);
  Result<v1::ContainerInfo> runReserved(const v1::RunContainerRequest& req, const Reservation& held);
  Status initFirewall();
  Result<std::vector<container::devices::Device>> deviceNeedsOf(const Spec& s);
  std::string fillMarker(const std::string& name) const { return cfg_.stateDir + "/fills/" + name; }
  std::string awayPath() const { return cfg_.stateDir + "/addresses-away"; }
  std::set<std::string> readAway() const;
  std::mutex awayMu_;  // the file at awayPath()

  AgentConfig cfg_;
  container::LxcHost lxc_;
  ClusterConfig cluster_;
  std::unique_ptr<sched::Membership> membership_;
  std::unique_ptr<store::AuditLog> audit_;
  std::unique_ptr<net::Firewall> fw_;
  std::unique_ptr<net::PacketHold> hold_;  // null: hold_queue off or unavailable
  struct Forwarded {
    std::string ip, via;
    int64_t untilNs = 0;
  };
  std::mutex forwardMu_;
  std::vector<Forwarded> forwarded_;
  std::string caPem_, certPem_, keyPem_;
  std::atomic<uint16_t> dataPort_{0};
  std::atomic<bool> frozenCheck_{false};
  std::mutex mu_;
  Reservations reservations_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  struct CpuSample {
    int64_t prevNs = 0, lastNs = 0;     // monotonic
    uint64_t prevUse = 0, lastUse = 0;  // CPU time, ns
  };
  std::mutex loadMu_;
  std::map<std::string, CpuSample> cpu_;
};

}  // namespace lxmig::node
