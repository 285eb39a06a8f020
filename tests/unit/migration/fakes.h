// Fakes of a node (migration::ContainerHost) and of its peers for unit tests
// of the migration logic without LXC, CRIU or a network: a FakeNode keeps
// its containers in a map and its files in a temporary directory; a peer is
// another FakeNode's real migration::Target, called in-process. Any host
// operation can be made to fail (`failAt`), and any peer call too.
//
//   FakeNode n1("n1"), n2("n2");
//   n1.addRunning("web", "10.200.1.10");
//   FakeCluster cluster({&n1, &n2});
//   Source src(n1.sourceContext(cluster), request, {}, {});
//   auto report = src.run();
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "lxmig/migration/host.h"
#include "lxmig/migration/peers.h"
#include "lxmig/migration/settle.h"
#include "lxmig/migration/source.h"
#include "lxmig/migration/target.h"
#include "lxmig/node/reservations.h"
#include "lxmig/store/audit_log.h"
#include "unit/temp_dir.h"

namespace lxmig::migration::testing {

class FakeNode final : public ContainerHost {
 public:
  struct Container {
    node::Spec spec;
    container::RunState state = container::RunState::kStopped;
    bool routed = false;   // the node routes its address here
    bool blocked = false;  // its address is in the node's blocked set
    bool rules = false;    // its firewall chain exists here
  };

  explicit FakeNode(std::string name);
  // A running container with one file in its writable area.
  void addRunning(const std::string& name, const std::string& ip);
  Container* find(const std::string& name);
  // Every host operation so far, in order ("freeze web", "isolate web", ...).
  const std::vector<std::string>& calls() const { return calls_; }
  bool called(const std::string& call) const;

  // Makes the named operation fail from now on ("dump", "freeze",
  // "importNet", ...; see the methods below) with `st`.
  std::map<std::string, Status> failAt;
  std::optional<node::Node::MemoryFill> fill;  // memory still arriving, for every container

  store::AuditLog& audit() { return *audit_; }
  node::Reservations& reservations() { return reservations_; }
  Target& target() { return *target_; }
  // What an agent restart does to the target side: the Target and all it
  // held in memory go, the audit marks what was running as interrupted.
  void restartAgent();
  // restore() hangs like a stuck CRIU until its deadline or cancel flag.
  bool restoreHangs = false;
  // Runs inside restore(), before it returns (tests of what races it).
  std::function<void()> duringRestore;

  // ContainerHost
  const std::string& nodeName() const override { return name_; }
  std::string imagesRoot() const override { return root_.path() + "/images"; }
  std::string logsRoot() const override { return root_.path() + "/logs"; }
  std::string stagingRoot() const override { return root_.path() + "/lxc"; }
  std::string imagesDiskRoot() const override { return diskImages_ ? root_.path() + "/images-disk" : ""; }
  uint64_t freeBytes(const std::string& dir) const override {
    auto it = freeBytesAt_.find(dir);
    return it == freeBytesAt_.end() ? freeBytes_ : it->second;
  }
  bool sameFilesystem(const std::string&, const std::string&) const override { return true; }
  std::vector<std::string> containers() override;
  bool defined(const std::string& name) override { return containers_.count(name) > 0; }
  Result<node::Spec> spec(const std::string& name) override;
  container::RunState state(const std::string& name) override;
  uint64_t memoryBytes(const std::string&) override { return 1 << 20; }
  std::string rootfs(const std::string& name) override { return stagingRoot() + "/" + name + "/rootfs"; }
  Result<std::vector<pid_t>> pids(const std::string& name) override;
  Status freeze(const std::string& name) override;
  Status thaw(const std::string& name) override;
  bool frozen(const std::string& name) override { return state(name) == container::RunState::kFrozen; }
  Status dump(const std::string& name, const std::string& dir, int discardPages, const container::CallLimits& limits,
              const container::KeptOut& out) override;
  Status destroy(const std::string& name) override;
  bool hostPathExists(const std::string& path) override { return !missingPaths.count(path); }
  Status checkMovesAlone(const std::string& name) override { return op("checkMovesAlone", name); }
  Status installStaged(const node::Spec& spec, const std::string& stagedRootfs) override;
  Result<Child> spawnLazyPages(const std::string& dir) override;
  Status awaitLazyPages(const std::string& dir, Child& daemon) override;
  Status restore(const std::string& name, const std::string& dir, bool lazy, const container::CallLimits& limits,
                 const container::KeptOut& out) override;
  // The network namespace outside the images: the fake has none, so
  // migrations go the way CRIU saves it.
  Result<net::NetnsLayout> netnsLayout(const std::string& name) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no network namespace of `" + name + "`");
  }
  Result<std::string> netnsShape(const std::string& name) override { return netnsLayout(name).status(); }
  Result<std::string> netnsGlance(const std::string& name, uint64_t*) override { return netnsLayout(name).status(); }
  // Records what it was asked to lay out; makes none.
  Result<std::unique_ptr<net::PreparedNetns>> prepareNetns(const net::NetnsLayout& layout) override {
    preparedLayouts.push_back(layout);
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no network namespaces");
  }
  std::vector<net::NetnsLayout> preparedLayouts;
  // /dev/shm and /dev outside the images: the fake's containers have none.
  Result<std::string> devShmProblem(const std::string& name, container::DevShmHolds, container::DevShmFiles*) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no /dev/shm of `" + name + "`");
  }
  Result<UniqueFd> openDevShm(const std::string& name) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no /dev/shm of `" + name + "`");
  }
  Result<std::unique_ptr<container::PreparedTmpfs>> prepareDevShm(const std::string&) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no mounts");
  }
  Result<std::string> devProblem(const std::string& name, std::string*) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no /dev of `" + name + "`");
  }
  Result<std::unique_ptr<container::PreparedTmpfs>> prepareDev(const std::string&, const std::string&) override {
    return Status(Code::kUnimplemented, "fake node " + name_ + ": no mounts");
  }
  int initPid(const std::string&) override { return 1; }
  void killRestore(const std::string& name) override { (void)op("killRestore", name); }
  // No cgroups here: the page store keeps no mirror.
  Result<UniqueFd> heldMemoryCgroup(const std::string& name) override {
    return unavailable("no memory cgroup for `" + name + "` in the fake node");
  }
  void removeHeldMemoryCgroup(const std::string&) override {}
  Result<std::vector<container::devices::Device>> deviceNeeds(const std::string& name) override;
  Result<std::vector<container::devices::Device>> deviceOffer() override { return devices_; }
  Result<container::devices::Device> statDevice(const std::string& path) override;
  std::optional<node::Node::MemoryFill> memoryFill(const std::string&) override { return fill; }
  Status beginMemoryFill(const std::string& name, const std::string&, pid_t, const std::string&) override;
  void endMemoryFill(const std::string& name) override;
  Status holdIncoming(const node::Spec& spec) override;
  Status isolate(const node::Spec& spec) override;
  Status speak(const node::Spec& spec) override { return op("speak", spec.name); }
  Status silence(const node::Spec& spec) override { return op("silence", spec.name); }
  Result<size_t> forward(const node::Spec& spec, const std::string& toNode) override;
  Status reconnect(const node::Spec& spec) override;
  Status claimAddress(const node::Spec& spec) override;
  Status releaseAddress(const node::Spec& spec) override;
  Result<v1::NetState> exportNet(const node::Spec& spec, bool conntrack, size_t* entries) override;
  Status peekQueuedDatagrams(const node::Spec& spec, v1::NetState*) override {
    return op("peekQueuedDatagrams", spec.name);
  }
  Status importNet(const node::Spec& spec, const v1::NetState& net, ImportedNet* done) override;
  void dropImportedNet(const node::Spec& spec, ImportedNet* done) override;
  Status recordCriuGaps(const std::string& name, const std::string&) override { return op("recordCriuGaps", name); }
  Status applyCriuGaps(const std::string& name, const std::string&) override { return op("applyCriuGaps", name); }
  Status raiseMtus(const std::string&, const std::vector<net::LoweredMtu>&) override { return okStatus(); }
  // `waiting` until the workload runs once (it accepts them then).
  Result<size_t> waitingConnections(const std::string& name) override {
    if (calls_.empty() || calls_.back() == "thaw " + name) waiting = 0;
    return waiting;
  }
  Status requeueDatagrams(const std::string& name, const v1::NetState&) override {
    return op("requeueDatagrams", name);
  }
  void forgetNet(const node::Spec& spec) override;

  std::set<std::string> missingPaths;  // bind sources this node lacks
  size_t waiting = 0;                  // connections waiting in accept queues
  uint64_t freeBytes_ = uint64_t{1} << 40;
  std::map<std::string, uint64_t> freeBytesAt_;  // by directory, over freeBytes_
  bool diskImages_ = true;                       // offers imagesDiskRoot()

 private:
  Status op(const std::string& what, const std::string& name);
  std::string name_;
  lxmig::testing::TempDir root_;
  std::map<std::string, Container> containers_;
  std::mutex callsMu_;
  std::vector<std::string> calls_;
  std::vector<container::devices::Device> devices_;
  std::unique_ptr<store::AuditLog> audit_;
  node::Reservations reservations_;
  std::unique_ptr<Target> target_;
};

// What a peer call does instead of reaching the peer's Target.
struct PeerFaults {
  bool unreachable = false;      // every call: Unavailable
  bool restoreTimesOut = false;  // the target restores, the answer is lost
  bool abortFails = false;       // ABORT is not confirmed
  bool commitFails = false;      // COMMIT is not confirmed
  bool streamBreaks = false;     // bulk streams break at the first chunk
  int prepareCalls = 0, abortCalls = 0, commitCalls = 0, restoreCalls = 0;
};

// The nodes of a test, reachable from each other in-process.
class FakeCluster final : public Peers {
 public:
  explicit FakeCluster(std::vector<FakeNode*> nodes) : nodes_(std::move(nodes)) {}
  // The node whose view this is: peers see calls as coming from it.
  std::string caller = "n1";
  PeerFaults& faults(const std::string& node) { return faults_[node]; }

  Result<std::unique_ptr<Peer>> connect(const std::string& node) override;
  std::vector<std::string> names() override;
  Result<std::vector<v1::ContainerInfo>> containers(const std::string& node, int seconds) override;
  FakeNode* node(const std::string& name);

 private:
  std::vector<FakeNode*> nodes_;
  std::map<std::string, PeerFaults> faults_;
};

// A source's context on `n`, its peers from `cluster`.
SourceContext sourceContext(FakeNode& n, FakeCluster& cluster, std::function<void()> settleLater = {});

}  // namespace lxmig::migration::testing
