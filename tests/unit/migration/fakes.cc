#include "fakes.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/transport/tree_transfer.h"

namespace lxmig::migration::testing {

using container::RunState;

FakeNode::FakeNode(std::string name) : name_(std::move(name)), root_("lxmig-fake-" + name_) {
  (void)makeDirs(imagesRoot(), 0700);
  (void)makeDirs(imagesDiskRoot(), 0700);
  (void)makeDirs(logsRoot(), 0700);
  (void)makeDirs(stagingRoot(), 0700);
  auto log = store::AuditLog::open(root_.path() + "/audit.db");
  if (log.ok()) audit_ = std::move(*log);
  target_ = std::make_unique<Target>(*this, *audit_, reservations_, Target::Options{});
}

void FakeNode::restartAgent() {
  target_.reset();
  (void)audit_->failInterrupted(wallMs());
  target_ = std::make_unique<Target>(*this, *audit_, reservations_, Target::Options{});
}

void FakeNode::addRunning(const std::string& name, const std::string& ip) {
  Container c;
  c.spec.name = name;
  c.spec.ip = ip;
  c.spec.hwaddr = "02:4c:4d:00:00:01";
  c.spec.command = {"/bin/workload"};
  c.state = RunState::kRunning;
  c.routed = true;
  c.rules = true;
  containers_[name] = c;
  (void)makeDirs(rootfs(name) + "/var/data", 0755);
  (void)writeFileAtomic(rootfs(name) + "/var/data/state", "state of " + name + "\n", 0644);
}

FakeNode::Container* FakeNode::find(const std::string& name) {
  auto it = containers_.find(name);
  return it == containers_.end() ? nullptr : &it->second;
}

bool FakeNode::called(const std::string& call) const {
  return std::find(calls_.begin(), calls_.end(), call) != calls_.end();
}

Status FakeNode::op(const std::string& what, const std::string& name) {
  std::lock_guard<std::mutex> lock(callsMu_);  // the source exports the network while it dumps
  calls_.push_back(what + " " + name);
  if (auto it = failAt.find(what); it != failAt.end()) return it->second;
  return okStatus();
}

std::vector<std::string> FakeNode::containers() {
  std::vector<std::string> out;
  for (const auto& [n, c] : containers_) out.push_back(n);
  return out;
}

Result<node::Spec> FakeNode::spec(const std::string& name) {
  auto* c = find(name);
  if (!c) return notFound("no container `" + name + "` on node " + name_);
  return c->spec;
}

RunState FakeNode::state(const std::string& name) {
  auto* c = find(name);
  return c ? c->state : RunState::kStopped;
}

Result<std::vector<pid_t>> FakeNode::pids(const std::string& name) {
  if (!find(name)) return notFound("container `" + name + "` has no cgroup");
  return std::vector<pid_t>{};
}

Status FakeNode::freeze(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(op("freeze", name));
  auto* c = find(name);
  if (!c) return notFound(name);
  c->state = RunState::kFrozen;
  return okStatus();
}

Status FakeNode::thaw(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(op("thaw", name));
  auto* c = find(name);
  if (!c) return notFound(name);
  c->state = RunState::kRunning;
  return okStatus();
}

Status FakeNode::dump(const std::string& name, const std::string& dir, int, const container::CallLimits&,
                      const container::KeptOut&) {
  LXMIG_RETURN_IF_ERROR(op("dump", name));
  if (!frozen(name)) return failedPrecondition("container `" + name + "` must be frozen before dump");
  LXMIG_RETURN_IF_ERROR(makeDirs(dir, 0700));
  for (const char* f : {"inventory.img", "pstree.img", "core-1.img", "pages-1.img", "dump.log"})
    LXMIG_RETURN_IF_ERROR(writeFileAtomic(dir + "/" + f, std::string(f) + " of " + name, 0600));
  return okStatus();
}

Status FakeNode::destroy(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(op("destroy", name));
  containers_.erase(name);
  return removeTree(stagingRoot() + "/" + name);
}

Status FakeNode::installStaged(const node::Spec& spec, const std::string& stagedRootfs) {
  LXMIG_RETURN_IF_ERROR(op("installStaged", spec.name));
  LXMIG_RETURN_IF_ERROR(makeDirs(stagingRoot() + "/" + spec.name, 0700));
  if (::rename(stagedRootfs.c_str(), rootfs(spec.name).c_str()) != 0)
    return Status::fromErrno("rename", rootfs(spec.name));
  Container c;
  c.spec = spec;
  containers_[spec.name] = c;
  return okStatus();
}

Result<Child> FakeNode::spawnLazyPages(const std::string& dir) {
  return unimplemented("the fake node has no lazy-pages daemon (" + dir + ")");
}

Status FakeNode::awaitLazyPages(const std::string& dir, Child&) {
  return unimplemented("the fake node has no lazy-pages daemon (" + dir + ")");
}

Status FakeNode::restore(const std::string& name, const std::string& dir, bool, const container::CallLimits& limits,
                         const container::KeptOut&) {
  LXMIG_RETURN_IF_ERROR(op("restore", name));
  for (const int64_t end = monotonicNs() + limits.timeoutMs * 1000000; restoreHangs;) {
    if (limits.cancel && *limits.cancel) return Status(Code::kCancelled, "restore of `" + name + "` cancelled");
    if (monotonicNs() > end) return deadlineExceeded("restore of `" + name + "` took too long: killed");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto* c = find(name);
  if (!c) return notFound("container `" + name + "` is not defined");
  if (!pathExists(dir + "/inventory.img")) return internalError("no images in " + dir);
  c->state = RunState::kFrozen;  // as dumped
  if (duringRestore) duringRestore();
  return okStatus();
}

Result<std::vector<container::devices::Device>> FakeNode::deviceNeeds(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(op("deviceNeeds", name));
  return std::vector<container::devices::Device>{};
}

Result<container::devices::Device> FakeNode::statDevice(const std::string& path) {
  return notFound("the fake node has no device " + path);
}

Status FakeNode::beginMemoryFill(const std::string& name, const std::string&, pid_t, const std::string&) {
  return op("beginMemoryFill", name);
}

void FakeNode::endMemoryFill(const std::string& name) { calls_.push_back("endMemoryFill " + name); }

Status FakeNode::holdIncoming(const node::Spec& spec) {
  LXMIG_RETURN_IF_ERROR(op("holdIncoming", spec.name));
  if (auto* c = find(spec.name)) c->blocked = true;
  return okStatus();
}

Status FakeNode::isolate(const node::Spec& spec) {
  LXMIG_RETURN_IF_ERROR(op("isolate", spec.name));
  if (auto* c = find(spec.name)) {
    c->blocked = true;
    c->routed = false;
  }
  return okStatus();
}

Result<size_t> FakeNode::forward(const node::Spec& spec, const std::string& toNode) {
  LXMIG_RETURN_IF_ERROR(op("forward", spec.name + " " + toNode));
  return size_t{0};
}

Status FakeNode::reconnect(const node::Spec& spec) {
  LXMIG_RETURN_IF_ERROR(op("reconnect", spec.name));
  if (auto* c = find(spec.name)) {
    c->blocked = false;
    c->routed = true;
  }
  return okStatus();
}

Status FakeNode::claimAddress(const node::Spec& spec) {
  LXMIG_RETURN_IF_ERROR(op("claimAddress", spec.name));
  if (auto* c = find(spec.name)) c->routed = true;
  return okStatus();
}

Status FakeNode::releaseAddress(const node::Spec& spec) {
  LXMIG_RETURN_IF_ERROR(op("releaseAddress", spec.name));
  if (auto* c = find(spec.name)) c->routed = false;
  return okStatus();
}

Result<v1::NetState> FakeNode::exportNet(const node::Spec& spec, bool conntrack, size_t* entries) {
  LXMIG_RETURN_IF_ERROR(op("exportNet", spec.name));
  v1::NetState net;
  net.set_rules_json("{\"chain\": \"" + spec.name + "\"}");
  if (conntrack) {
    net.set_conntrack("entries of " + spec.ip);
    net.set_conntrack_replicated(true);
  }
  *entries = conntrack ? 1 : 0;
  return net;
}

Status FakeNode::importNet(const node::Spec& spec, const v1::NetState& net, ImportedNet* done) {
  LXMIG_RETURN_IF_ERROR(op("importNet", spec.name));
  if (!net.rules_json().empty()) {
    done->rules = true;
    if (auto* c = find(spec.name)) c->rules = true;
  }
  done->conntrack = net.conntrack();
  done->conntrackCount = net.conntrack().empty() ? 0 : 1;
  return okStatus();
}

void FakeNode::dropImportedNet(const node::Spec& spec, ImportedNet* done) {
  calls_.push_back("dropImportedNet " + spec.name);
  if (done->rules)
    if (auto* c = find(spec.name)) c->rules = false;
  *done = {};
}

void FakeNode::forgetNet(const node::Spec& spec) {
  calls_.push_back("forgetNet " + spec.name);
  if (auto* c = find(spec.name)) {
    c->rules = false;
    c->blocked = false;
  }
}

namespace {

// A bulk stream into a Target: chunks are kept and handed over at finish(),
// as the data link's receiver would see them.
class LoopWriter final : public transport::ChunkWriter {
 public:
  LoopWriter(Target& target, std::string caller, bool breaks)
      : target_(target), caller_(std::move(caller)), breaks_(breaks) {}
  bool write(v1::TransferChunk& c) override {
    if (breaks_ || cancelled_) return false;
    chunks_.push_back(c);
    return true;
  }
  Result<v1::TransferReply> finish() override {
    if (breaks_) return unavailable("stream broke (fault injected)");
    if (cancelled_) return cancelled("stream cancelled");
    size_t next = 0;
    return target_.receive(
        caller_,
        [&](v1::TransferChunk& c) -> Result<bool> {
          if (next == chunks_.size()) return false;
          c = chunks_[next++];
          return true;
        },
        false);
  }
  void cancel() override { cancelled_ = true; }
  const char* kind() const override { return "loop"; }

 private:
  Target& target_;
  std::string caller_;
  bool breaks_;
  bool cancelled_ = false;
  std::vector<v1::TransferChunk> chunks_;
};

class LoopPeer final : public Peer {
 public:
  LoopPeer(FakeNode& node, std::string caller, PeerFaults& faults)
      : node_(node), caller_(std::move(caller)), f_(faults) {}
  const std::string& name() const override { return node_.nodeName(); }
  Result<v1::PrepareReply> prepare(const v1::PrepareRequest& req) override {
    ++f_.prepareCalls;
    LXMIG_RETURN_IF_ERROR(reach());
    LXMIG_RETURN_IF_ERROR(node_.target().prepare(caller_, req));
    return v1::PrepareReply{};  // no data port: streams take the "RPC"
  }
  Result<std::unique_ptr<transport::ChunkWriter>> openDataLink(uint16_t) override {
    return unavailable("no data link in the fake cluster");
  }
  std::unique_ptr<transport::ChunkWriter> openRpcStream() override {
    return std::make_unique<LoopWriter>(node_.target(), caller_, f_.streamBreaks || f_.unreachable);
  }
  Status prelayout(const v1::PrelayoutRequest& req) override {
    LXMIG_RETURN_IF_ERROR(reach());
    return node_.target().prelayout(caller_, req);
  }
  Status reserve(const v1::ReserveRequest& req) override {
    LXMIG_RETURN_IF_ERROR(reach());
    return node_.target().reserve(caller_, req);
  }
  Result<v1::RestoreReply> restore(const v1::RestoreRequest& req) override {
    ++f_.restoreCalls;
    LXMIG_RETURN_IF_ERROR(reach());
    auto r = node_.target().restore(caller_, req.migration_id(), req.lazy(), req.net(), req.deadline_ms(),
                                    {.netns = req.netns_prepared(),
                                     .devShm = req.dev_shm_prepared(),
                                     .dev = req.dev_prepared(),
                                     .durableAtCommit = req.durable_at_commit()});
    if (f_.restoreTimesOut) return unavailable("target " + name() + " unreachable: Deadline Exceeded");
    return r;
  }
  Status commit(const std::string& id) override {
    ++f_.commitCalls;
    LXMIG_RETURN_IF_ERROR(reach());
    if (f_.commitFails) return unavailable("target " + name() + " unreachable: commit lost");
    return node_.target().commit(caller_, id);
  }
  Status abort(const std::string& id, const std::string& reason, int, bool unlessRestored) override {
    ++f_.abortCalls;
    LXMIG_RETURN_IF_ERROR(reach());
    if (f_.abortFails) return unavailable("target " + name() + " unreachable: abort lost");
    return node_.target().abort(caller_, id, reason, unlessRestored);
  }

 private:
  Status reach() const {
    return f_.unreachable ? unavailable("target " + node_.nodeName() + " unreachable: connection refused") : okStatus();
  }
  FakeNode& node_;
  std::string caller_;
  PeerFaults& f_;
};

}  // namespace

FakeNode* FakeCluster::node(const std::string& name) {
  for (auto* n : nodes_)
    if (n->nodeName() == name) return n;
  return nullptr;
}

Result<std::unique_ptr<Peer>> FakeCluster::connect(const std::string& name) {
  FakeNode* n = node(name);
  if (!n) return notFound("unknown node `" + name + "`");
  return std::unique_ptr<Peer>(std::make_unique<LoopPeer>(*n, caller, faults_[name]));
}

std::vector<std::string> FakeCluster::names() {
  std::vector<std::string> out;
  for (auto* n : nodes_) out.push_back(n->nodeName());
  return out;
}

Result<std::vector<v1::ContainerInfo>> FakeCluster::containers(const std::string& name, int) {
  FakeNode* n = node(name);
  if (!n) return notFound("unknown node `" + name + "`");
  if (faults_[name].unreachable) return unavailable("node " + name + " unreachable");
  std::vector<v1::ContainerInfo> out;
  for (const auto& c : n->containers()) {
    v1::ContainerInfo ci;
    ci.set_name(c);
    ci.set_node(name);
    auto why = n->reservations().why(c);
    ci.set_state(why && startsWith(*why, "migrating") ? "MIGRATING" : container::runStateName(n->state(c)));
    out.push_back(ci);
  }
  return out;
}

SourceContext sourceContext(FakeNode& n, FakeCluster& cluster, std::function<void()> settleLater) {
  return {n, cluster, n.audit(), n.reservations(), std::move(settleLater)};
}

}  // namespace lxmig::migration::testing
