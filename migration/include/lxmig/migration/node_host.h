// The migration's view of a real node (host.h, peers.h) over node::Node:
// liblxc and CRIU through its container host, the node's nftables table and
// conntrack for network state, gRPC with mutual TLS and the data link for
// peers.
//
//   NodeHost host(node);
//   NodePeers peers(node);
//   Source src({host, peers, node.audit(), node.reservations(), ...}, req, progress, cancelled);
#pragma once

#include "lxmig/migration/host.h"
#include "lxmig/migration/peers.h"
#include "lxmig/node/node.h"

namespace lxmig::migration {

class NodeHost final : public ContainerHost {
 public:
  explicit NodeHost(node::Node& node) : node_(node) {}

  const std::string& nodeName() const override { return node_.config().node; }
  std::string imagesRoot() const override { return node_.imagesRoot(); }
  std::string imagesDiskRoot() const override { return node_.imagesDiskRoot(); }
  std::string logsRoot() const override { return node_.config().stateDir + "/logs"; }
  std::string stagingRoot() const override { return node_.config().lxcPath; }
  uint64_t freeBytes(const std::string& dir) const override;
  bool sameFilesystem(const std::string& a, const std::string& b) const override;

  std::vector<std::string> containers() override { return node_.lxc().list(); }
  bool defined(const std::string& name) override { return node_.lxc().defined(name); }
  Result<node::Spec> spec(const std::string& name) override { return node_.spec(name); }
  container::RunState state(const std::string& name) override { return node_.lxc().state(name); }
  uint64_t memoryBytes(const std::string& name) override { return node_.lxc().memoryBytes(name); }
  std::string rootfs(const std::string& name) override { return node_.lxc().rootfs(name); }
  Result<std::vector<pid_t>> pids(const std::string& name) override { return node_.lxc().pids(name); }
  Status freeze(const std::string& name) override { return node_.lxc().freeze(name); }
  Status thaw(const std::string& name) override { return node_.lxc().thaw(name); }
  bool frozen(const std::string& name) override { return node_.lxc().frozen(name); }
  Status dump(const std::string& name, const std::string& dir, int discardPages, const container::CallLimits& limits,
              const container::KeptOut& out) override;
  Status recordCriuGaps(const std::string& name, const std::string& dir) override;
  Status applyCriuGaps(const std::string& name, const std::string& dir) override;
  Status raiseMtus(const std::string& name, const std::vector<net::LoweredMtu>& links) override;
  Status destroy(const std::string& name) override { return node_.lxc().destroy(name); }
  bool hostPathExists(const std::string& path) override;
  Status checkMovesAlone(const std::string& name) override;

  Status installStaged(const node::Spec& spec, const std::string& stagedRootfs) override;
  Result<Child> spawnLazyPages(const std::string& dir) override { return node_.lxc().spawnLazyPages(dir); }
  Status awaitLazyPages(const std::string& dir, Child& daemon) override {
    return node_.lxc().awaitLazyPages(dir, daemon);
  }
  Status restore(const std::string& name, const std::string& dir, bool lazy, const container::CallLimits& limits,
                 const container::KeptOut& out) override {
    return node_.lxc().restore(name, dir, lazy, limits, out);
  }
  void killRestore(const std::string& name) override { node_.lxc().killRestoreLeftovers(name); }
  Result<UniqueFd> heldMemoryCgroup(const std::string& name) override { return node_.lxc().heldMemoryCgroup(name); }
  void removeHeldMemoryCgroup(const std::string& name) override { node_.lxc().removeHeldMemoryCgroup(name); }
  int initPid(const std::string& name) override { return node_.lxc().initPid(name); }

  Result<net::NetnsLayout> netnsLayout(const std::string& name) override;
  Result<std::string> netnsShape(const std::string& name) override;
  Result<std::string> netnsGlance(const std::string& name, uint64_t* inode) override;
  Result<std::unique_ptr<net::PreparedNetns>> prepareNetns(const net::NetnsLayout& layout) override;
  Result<std::string> devShmProblem(const std::string& name, container::DevShmHolds holds,
                                    container::DevShmFiles* files) override;
  Result<UniqueFd> openDevShm(const std::string& name) override;
  Result<std::unique_ptr<container::PreparedTmpfs>> prepareDevShm(const std::string& dir) override {
    return container::prepareDevShm(dir);
  }
  Result<std::string> devProblem(const std::string& name, std::string* bootId) override;
  Result<std::unique_ptr<container::PreparedTmpfs>> prepareDev(const std::string& dir,
                                                               const std::string& bootId) override {
    return container::prepareDev(dir, bootId);
  }

  Result<std::vector<container::devices::Device>> deviceNeeds(const std::string& name) override {
    return node_.deviceNeeds(name);
  }
  Result<std::vector<container::devices::Device>> deviceOffer() override { return node_.deviceOffer(); }
  Result<container::devices::Device> statDevice(const std::string& path) override {
    return container::devices::statDevice(path);
  }

  std::optional<node::Node::MemoryFill> memoryFill(const std::string& name) override { return node_.memoryFill(name); }
  Status beginMemoryFill(const std::string& name, const std::string& migrationId, pid_t daemon,
                         const std::string& imagesDir) override {
    return node_.beginMemoryFill(name, migrationId, daemon, imagesDir);
  }
  void endMemoryFill(const std::string& name) override { node_.endMemoryFill(name); }

  Status holdIncoming(const node::Spec& spec) override;
  Status isolate(const node::Spec& spec) override;
  Status speak(const node::Spec& spec) override;
  Status silence(const node::Spec& spec) override;
  Result<size_t> forward(const node::Spec& spec, const std::string& toNode) override {
    return node_.forwardTraffic(spec, toNode);
  }
  Status reconnect(const node::Spec& spec) override;
  Status claimAddress(const node::Spec& spec) override { return node_.claimAddress(spec); }
  Status releaseAddress(const node::Spec& spec) override { return node_.releaseAddress(spec); }
  Result<v1::NetState> exportNet(const node::Spec& spec, bool conntrack, size_t* entries) override;
  Status peekQueuedDatagrams(const node::Spec& spec, v1::NetState* net) override;
  Status importNet(const node::Spec& spec, const v1::NetState& net, ImportedNet* done) override;
  void dropImportedNet(const node::Spec& spec, ImportedNet* done) override;
  Status requeueDatagrams(const std::string& name, const v1::NetState& net) override;
  Result<size_t> waitingConnections(const std::string& name) override;
  void forgetNet(const node::Spec& spec) override;

 private:
  node::Node& node_;
};

class NodePeers final : public Peers {
 public:
  explicit NodePeers(node::Node& node) : node_(node) {}
  Result<std::unique_ptr<Peer>> connect(const std::string& node) override;
  std::vector<std::string> names() override { return node_.peerNames(); }
  Result<std::vector<v1::ContainerInfo>> containers(const std::string& node, int seconds) override;

 private:
  node::Node& node_;
};

}  // namespace lxmig::migration
