#include "lxmig/migration/node_host.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/container/criu_gaps.h"
#include "lxmig/container/unmovable.h"
#include "lxmig/grouping/ipc_graph.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/net/sockets.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::migration {
namespace {

constexpr const char* kLog = "node";
// Deadlines of the calls to a target, in seconds: PREPARE waits for a peer
// that reconnects; RESTORE includes CRIU's restore of a large container.
constexpr int kPrepareSeconds = 10;
constexpr int kPrelayoutSeconds = 5;
constexpr int kRestoreSeconds = 120;  // a request without a deadline
// The target's answer to a restore it killed at its deadline arrives
// within this much more (the kill, the rollback, the reply).
constexpr int kRestoreAnswerSlackSeconds = 30;
constexpr int kCommitSeconds = 10;
constexpr int kDataLinkConnectMs = 5000;

void setDeadline(grpc::ClientContext& ctx, int seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

class GrpcPeer final : public Peer {
 public:
  GrpcPeer(node::Node& node, std::string name, std::unique_ptr<v1::Peer::Stub> stub)
      : node_(node), name_(std::move(name)), stub_(std::move(stub)) {}
  const std::string& name() const override { return name_; }

  Result<v1::PrepareReply> prepare(const v1::PrepareRequest& req) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, kPrepareSeconds);
    // A peer that just restarted leaves the channel in reconnect backoff;
    // wait for it (until the deadline) instead of failing at once.
    ctx.set_wait_for_ready(true);
    v1::PrepareReply rep;
    LXMIG_RETURN_IF_ERROR(fromPeerGrpc(name_, stub_->Prepare(&ctx, req, &rep)));
    return rep;
  }
  Result<std::unique_ptr<transport::ChunkWriter>> openDataLink(uint16_t port) override {
    LXMIG_ASSIGN_OR_RETURN(std::string host, node_.peerHost(name_));
    return transport::connectDataLink(node_.tlsIdentity(), host, port, kDataLinkConnectMs);
  }
  std::unique_ptr<transport::ChunkWriter> openRpcStream() override { return transport::grpcChunkWriter(*stub_, name_); }
  Status prelayout(const v1::PrelayoutRequest& req) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, kPrelayoutSeconds);
    v1::Ack ack;
    return fromPeerGrpc(name_, stub_->Prelayout(&ctx, req, &ack));
  }
  Status reserve(const v1::ReserveRequest& req) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, kPrelayoutSeconds);
    v1::Ack ack;
    return fromPeerGrpc(name_, stub_->Reserve(&ctx, req, &ack));
  }
  Result<v1::RestoreReply> restore(const v1::RestoreRequest& req) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, req.deadline_ms() > 0 ? static_cast<int>(req.deadline_ms() / 1000) + kRestoreAnswerSlackSeconds
                                           : kRestoreSeconds);
    v1::RestoreReply rep;
    LXMIG_RETURN_IF_ERROR(fromPeerGrpc(name_, stub_->Restore(&ctx, req, &rep)));
    return rep;
  }
  Status commit(const std::string& migrationId) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, kCommitSeconds);
    v1::MigrationRef ref;
    ref.set_migration_id(migrationId);
    v1::Ack ack;
    return fromPeerGrpc(name_, stub_->Commit(&ctx, ref, &ack));
  }
  Status abort(const std::string& migrationId, const std::string& reason, int seconds, bool unlessRestored) override {
    grpc::ClientContext ctx;
    setDeadline(ctx, seconds);
    v1::AbortRequest ar;
    ar.set_migration_id(migrationId);
    ar.set_reason(reason);
    ar.set_unless_restored(unlessRestored);
    v1::Ack ack;
    return fromPeerGrpc(name_, stub_->Abort(&ctx, ar, &ack));
  }

 private:
  node::Node& node_;
  std::string name_;
  std::unique_ptr<v1::Peer::Stub> stub_;
};

}  // namespace

uint64_t NodeHost::freeBytes(const std::string& dir) const { return freeBytesIn(dir).value_or(UINT64_MAX); }

bool NodeHost::sameFilesystem(const std::string& a, const std::string& b) const {
  struct stat sa {
  }, sb{};
  // Unknown counts as shared: the check it serves then asks for more room.
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return true;
  return sa.st_dev == sb.st_dev;
}

bool NodeHost::hostPathExists(const std::string& path) { return pathExists(path); }

namespace {

// The container's init (pid 1 inside) among its processes: cheaper than
// asking liblxc, which inside the frozen window counts.
int initOf(node::Node& node, const std::string& name, const std::vector<pid_t>& pids) {
  std::vector<pid_t> sorted = pids;
  std::sort(sorted.begin(), sorted.end());
  for (pid_t p : sorted)
    if (container::innerPid(p) == 1) return p;
  return node.lxc().initPid(name);
}

// One line per listener of the container with connections it has not
// accepted: CRIU's dump drops those (--skip-in-flight), and their clients
// would wait for good.
Result<std::vector<std::string>> unaccepted(const std::vector<pid_t>& pids, int init) {
  if (init <= 0) return std::vector<std::string>{};
  LXMIG_ASSIGN_OR_RETURN(auto waiting, net::unacceptedConnections("/proc/" + std::to_string(init) + "/ns/net", pids));
  std::vector<std::string> lines;
  for (const auto& w : waiting)
    lines.push_back(std::string(w.socket.family == AF_UNIX ? "Unix" : "TCP") + " listener " + w.socket.local +
                    (w.pid ? " of " + container::processLabel(w.pid) : "") + " has " + std::to_string(w.socket.rqueue) +
                    " connection(s) waiting to be accepted: CRIU cannot move a connection the workload has not "
                    "accepted yet (its client would wait for good); migrate once it has accepted them");
  return lines;
}

}  // namespace

Status NodeHost::checkMovesAlone(const std::string& name) {
  std::string problem = grouping::movesAloneProblem(grouping::scanNode({}), name);
  if (!problem.empty()) return failedPrecondition(problem);
  LXMIG_ASSIGN_OR_RETURN(node::Spec spec, node_.spec(name));
  const auto pids = node_.lxc().pids(name).value_or(std::vector<pid_t>{});
  std::string lines;
  for (const auto& l : container::locksInBinds(pids, spec.binds)) lines += (lines.empty() ? "" : "\n") + l;
  for (const auto& l : container::messageQueues(pids)) lines += (lines.empty() ? "" : "\n") + l;
  for (const auto& l : container::unmovableFiles(pids)) lines += (lines.empty() ? "" : "\n") + l;
  // A connection waiting to be accepted is usually accepted within
  // milliseconds: give the workload a second before refusing.
  const int init = initOf(node_, name, pids);
  Result<std::vector<std::string>> waiting = std::vector<std::string>{};
  for (int i = 0; i < 20; ++i) {
    waiting = unaccepted(pids, init);
    if (!waiting.ok() || waiting->empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  LXMIG_RETURN_IF_ERROR(waiting.status().withContext("list the listeners of `" + name + "`"));
  for (const auto& l : *waiting) lines += (lines.empty() ? "" : "\n") + l;
  return lines.empty() ? okStatus() : failedPrecondition(lines);
}

Status NodeHost::dump(const std::string& name, const std::string& dir, int discardPages,
                      const container::CallLimits& limits, const container::KeptOut& out) {
  if (node_.config().failAt == "criu-dump") {
    // Testing: CRIU fails for real, where it writes its image files.
    for (const char* f : {"pstree.img", "inventory.img"}) (void)makeDirs(dir + "/" + f, 0700);
  }
  return node_.lxc().dump(name, dir, discardPages, limits, out);
}

namespace {
Result<std::string> netnsOf(int init, const std::string& name) {
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  return "/proc/" + std::to_string(init) + "/ns/net";
}
}  // namespace

Result<net::NetnsLayout> NodeHost::netnsLayout(const std::string& name) {
  const int init = initPid(name);
  LXMIG_ASSIGN_OR_RETURN(std::string ns, netnsOf(init, name));
  // A container with a user namespace of its own (lxmig run --userns): its
  // restored tasks cannot join a namespace the target's agent made, which
  // belongs to the host's user namespace (setns: EPERM).
  struct stat mine {
  }, its{};
  if (::stat("/proc/self/ns/user", &mine) == 0 &&
      ::stat(("/proc/" + std::to_string(init) + "/ns/user").c_str(), &its) == 0 && mine.st_ino != its.st_ino)
    return failedPrecondition("the container has a user namespace of its own, which owns its network namespace");
  return net::netnsLayoutOf(ns);
}

Result<std::string> NodeHost::netnsShape(const std::string& name) {
  LXMIG_ASSIGN_OR_RETURN(std::string ns, netnsOf(initPid(name), name));
  return net::netnsShape(ns);
}

Result<std::unique_ptr<net::PreparedNetns>> NodeHost::prepareNetns(const net::NetnsLayout& layout) {
  // The restore joins the namespace through the criu wrapper (setup.sh,
  // v4 on): an older one would leave CRIU without it and every such
  // restore would fail. The wrapper is a short script; CRIU itself (a
  // binary of some MiB) is not read beyond its head.
  static const bool wrapperJoins = [] {
    const char* path = std::getenv("PATH");
    for (const auto& dir : split(path ? path : "", ':')) {
      auto text = readFileHead(dir + "/criu", 16384);
      if (text.ok()) return text->find("LXMIG_CRIU_NETNS") != std::string::npos;
    }
    return false;
  }();
  if (!wrapperJoins)
    return Status(Code::kUnimplemented, "the criu in PATH cannot join a prepared network namespace (run setup.sh)");
  return net::PreparedNetns::create(layout);
}

Result<std::string> NodeHost::devShmProblem(const std::string& name, container::DevShmHolds holds,
                                            container::DevShmFiles* files) {
  const int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  return container::devShmProblem(init, holds, files);
}

Result<UniqueFd> NodeHost::openDevShm(const std::string& name) {
  const int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  std::string shown;
  return container::openDevShmDir(init, &shown);
}

Result<std::string> NodeHost::devProblem(const std::string& name, std::string* bootId) {
  const int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  return container::devProblem(init, bootId);
}

Result<std::string> NodeHost::netnsGlance(const std::string& name, uint64_t* inode) {
  const int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  return net::netnsGlance(init, inode);
}

Status NodeHost::recordCriuGaps(const std::string& name, const std::string& dir) {
  const auto pids = node_.lxc().pids(name).value_or(std::vector<pid_t>{});
  LXMIG_ASSIGN_OR_RETURN(auto gaps, container::readCriuGaps(pids, initOf(node_, name, pids)));
  if (gaps.empty()) return okStatus();
  return writeFileAtomic(dir + "/" + container::kCriuGapsFile, container::formatCriuGaps(gaps), 0600);
}

Status NodeHost::applyCriuGaps(const std::string& name, const std::string& dir) {
  const std::string path = dir + "/" + container::kCriuGapsFile;
  if (!pathExists(path)) return okStatus();
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  LXMIG_ASSIGN_OR_RETURN(auto gaps, container::parseCriuGaps(text));
  const auto pids = node_.lxc().pids(name).value_or(std::vector<pid_t>{});
  return container::applyCriuGaps(gaps, pids, initOf(node_, name, pids));
}

Status NodeHost::raiseMtus(const std::string& name, const std::vector<net::LoweredMtu>& links) {
  if (links.empty()) return okStatus();
  struct stat own {};
  if (::stat("/proc/self/ns/net", &own) != 0) return Status::fromErrno("stat", "/proc/self/ns/net");
  std::set<ino_t> seen = {own.st_ino};  // never the node's own links
  for (pid_t pid : node_.lxc().pids(name).value_or(std::vector<pid_t>{})) {
    const std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
    struct stat st {};
    if (::stat(ns.c_str(), &st) != 0 || !seen.insert(st.st_ino).second) continue;
    int raised = 0;
    LXMIG_RETURN_IF_ERROR(net::raiseMtus(ns, links, &raised).withContext("`" + name + "`"));
    LXMIG_LOG(kDebug, kLog) << name << ": raised " << raised << " link MTU(s) in the namespace of pid " << pid;
  }
  return okStatus();
}

Status NodeHost::installStaged(const node::Spec& spec, const std::string& stagedRootfs) {
  auto& lxc = node_.lxc();
  LXMIG_RETURN_IF_ERROR(makeDirs(lxc.dir(spec.name), 0700));
  if (::rename(stagedRootfs.c_str(), lxc.rootfs(spec.name).c_str()) != 0)
    return Status::fromErrno("rename", lxc.rootfs(spec.name));
  LXMIG_RETURN_IF_ERROR(lxc.define(node_.paramsFor(spec), true));
  return node_.saveSpec(spec);
}

Status NodeHost::holdIncoming(const node::Spec& spec) {
  for (const auto& a : spec.addresses()) LXMIG_RETURN_IF_ERROR(node_.holdTraffic(a));
  return okStatus();
}

Status NodeHost::isolate(const node::Spec& spec) {
  // Held since holdIncoming(): only the frozen copy's own packets are left.
  for (const auto& a : spec.addresses()) LXMIG_RETURN_IF_ERROR(node_.silenceTraffic(a));
  if (Status st = node_.releaseAddress(spec); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
  return okStatus();
}

Status NodeHost::speak(const node::Spec& spec) {
  for (const auto& a : spec.addresses()) LXMIG_RETURN_IF_ERROR(node_.unsilenceTraffic(a));
  return okStatus();
}

Status NodeHost::silence(const node::Spec& spec) {
  for (const auto& a : spec.addresses()) LXMIG_RETURN_IF_ERROR(node_.silenceTraffic(a));
  return okStatus();
}

Status NodeHost::reconnect(const node::Spec& spec) {
  Status st = node_.claimAddress(spec);
  for (const auto& a : spec.addresses())
    if (Status ub = node_.resumeTraffic(a); !ub.ok() && st.ok()) st = ub;
  return st;
}

Result<v1::NetState> NodeHost::exportNet(const node::Spec& spec, bool conntrack, size_t* entries) {
  // The dump left out connections that arrived after checkMovesAlone() and
  // were not accepted before the freeze: moving on would lose them.
  const auto pids = node_.lxc().pids(spec.name).value_or(std::vector<pid_t>{});
  LXMIG_ASSIGN_OR_RETURN(auto waiting, unaccepted(pids, initOf(node_, spec.name, pids)));
  if (!waiting.empty()) return failedPrecondition(waiting.front());
  v1::NetState net;
  LXMIG_ASSIGN_OR_RETURN(*net.mutable_rules_json(), node_.firewall().exportContainer(spec.name, spec.ip));
  *entries = 0;
  if (conntrack) {
    LXMIG_ASSIGN_OR_RETURN(auto found, net::exportConntrack(spec.addresses()));
    net.set_conntrack(net::encodeConntrack(found));
    net.set_conntrack_replicated(true);
    *entries = found.size();
  }
  return net;
}

Status NodeHost::peekQueuedDatagrams(const node::Spec& spec, v1::NetState* net) {
  const auto pids = node_.lxc().pids(spec.name).value_or(std::vector<pid_t>{});
  const int init = initOf(node_, spec.name, pids);
  if (init <= 0) return okStatus();
  LXMIG_ASSIGN_OR_RETURN(auto queued, net::peekUdpQueues("/proc/" + std::to_string(init) + "/ns/net", pids));
  if (queued.udp_left_out() > 0)
    LXMIG_LOG(kWarn, kLog) << "`" << spec.name << "`: " << queued.udp_left_out()
                           << " queued UDP datagram(s) past the bound are not carried";
  *net->mutable_udp_queued() = std::move(*queued.mutable_udp_queued());
  net->set_udp_left_out(queued.udp_left_out());
  return okStatus();
}

Status NodeHost::importNet(const node::Spec& spec, const v1::NetState& net, ImportedNet* done) {
  LXMIG_RETURN_IF_ERROR(net::checkQueuedDatagrams(net, spec.addresses()));
  // The chain and the entries are the migrating container's: its name and
  // address from PREPARE, never what the peer's document says.
  if (!net.rules_json().empty()) {
    LXMIG_RETURN_IF_ERROR(node_.firewall().importContainer(spec.name, spec.ip, net.rules_json()));
    done->rules = true;
    // The addresses merged into it lead to the same chain.
    for (const auto& a : spec.extraIps) LXMIG_RETURN_IF_ERROR(node_.firewall().addContainer(spec.name, a));
  }
  if (net.conntrack().empty()) return okStatus();
  if (node_.config().failAt == "conntrack-import")
    return internalError("create conntrack entries: injected fault (lxmigd --fail-at conntrack-import)");
  LXMIG_ASSIGN_OR_RETURN(auto sent, net::decodeConntrack(net.conntrack()));
  std::set<uint32_t> own;
  for (const auto& ip : spec.addresses()) {
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) == 1) own.insert(a.s_addr);
  }
  net::ConntrackEntries entries;
  for (const auto& e : sent)
    if (own.count(e.origSrc) || own.count(e.origDst) || own.count(e.replSrc) || own.count(e.replDst))
      entries.push_back(e);
  if (entries.size() != sent.size())
    LXMIG_LOG(kWarn, kLog) << "conntrack import for `" << spec.name << "`: " << sent.size() - entries.size()
                           << " entries not of its addresses left out";
  LXMIG_ASSIGN_OR_RETURN(auto stats, net::importConntrack(entries));
  // An abort takes away what this import created, not the entries it only
  // refreshed (a flow that reached this node first lives on).
  std::vector<bool> refreshed(entries.size());
  for (size_t i : stats.refreshed) refreshed[i] = true;
  net::ConntrackEntries created;
  for (size_t i = 0; i < entries.size(); ++i)
    if (!refreshed[i]) created.push_back(entries[i]);
  done->conntrack = net::encodeConntrack(created);
  done->conntrackCount = static_cast<uint32_t>(stats.created + stats.updated);
  return okStatus();
}

Result<size_t> NodeHost::waitingConnections(const std::string& name) {
  const int init = initOf(node_, name, node_.lxc().pids(name).value_or(std::vector<pid_t>{}));
  if (init <= 0) return size_t{0};
  LXMIG_ASSIGN_OR_RETURN(auto waiting, net::unacceptedConnections("/proc/" + std::to_string(init) + "/ns/net", {}));
  size_t n = 0;
  for (const auto& w : waiting) n += w.socket.rqueue;
  return n;
}

Status NodeHost::requeueDatagrams(const std::string& name, const v1::NetState& net) {
  if (net.udp_queued_size() == 0) return okStatus();
  LXMIG_ASSIGN_OR_RETURN(node::Spec spec, node_.spec(name));
  LXMIG_RETURN_IF_ERROR(net::checkQueuedDatagrams(net, spec.addresses()));
  const int init = initOf(node_, name, node_.lxc().pids(name).value_or(std::vector<pid_t>{}));
  if (init <= 0) return failedPrecondition("`" + name + "` has no init process to put its UDP queues back in");
  return net::requeueDatagrams("/proc/" + std::to_string(init) + "/ns/net", net);
}

void NodeHost::dropImportedNet(const node::Spec& spec, ImportedNet* done) {
  if (done->rules) {
    if (auto st = node_.firewall().removeContainer(spec.name); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
    done->rules = false;
  }
  if (!done->conntrack.empty()) {
    auto entries = net::decodeConntrack(done->conntrack);
    auto n = entries.ok() ? net::deleteConntrackEntries(*entries) : Result<size_t>(entries.status());
    if (!n.ok()) LXMIG_LOG(kWarn, kLog) << n.status().toString();
    done->conntrack.clear();
    done->conntrackCount = 0;
  }
}

void NodeHost::forgetNet(const node::Spec& spec) {
  node_.dropNetState(spec);
  node_.addressesLeft(spec);
  for (const auto& a : spec.addresses())
    if (auto ub = node_.forgetTraffic(a); !ub.ok()) LXMIG_LOG(kWarn, kLog) << ub.toString();
}

Result<std::unique_ptr<Peer>> NodePeers::connect(const std::string& node) {
  LXMIG_ASSIGN_OR_RETURN(auto stub, node_.peer(node));
  return std::unique_ptr<Peer>(std::make_unique<GrpcPeer>(node_, node, std::move(stub)));
}

Result<std::vector<v1::ContainerInfo>> NodePeers::containers(const std::string& node, int seconds) {
  LXMIG_ASSIGN_OR_RETURN(auto reply, node_.peerContainers(node, seconds));
  return std::vector<v1::ContainerInfo>(reply.containers().begin(), reply.containers().end());
}

}  // namespace lxmig::migration
