#include "client.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cstdlib>

#include "lxmig/base/files.h"
#include "lxmig/base/toml.h"

namespace lxmig::cli {

static bool isSocket(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

Connector::Connector(std::string socket, std::string clusterFile)
    : socket_(std::move(socket)), clusterFile_(std::move(clusterFile)) {
  auto kv = loadToml(clusterFile_);
  if (!kv.ok()) return;
  hasStore_ = !kv->get("store.etcd").empty() || (kv->list("store.etcd") && !kv->list("store.etcd")->empty());
  for (const auto& n : kv->tables("node")) {
    nodeNames_.push_back(n);
    std::string s = kv->get("node." + n + ".socket");
    if (!s.empty()) nodeSockets_.emplace_back(n, s);
  }
}

Result<Target> Connector::forNode(const std::string& node) {
  std::string path;
  if (!node.empty()) {
    bool known = nodeNames_.empty() || hasStore_;  // with a store, the agent knows who is live
    for (const auto& n : nodeNames_) known |= n == node;
    if (!known) return notFound("unknown node `" + node + "` (not in " + clusterFile_ + ")");
    for (const auto& [n, s] : nodeSockets_)
      if (n == node && isSocket(s)) path = s;
  }
  if (path.empty() && isSocket(socket_)) path = socket_;
  if (path.empty())
    for (const auto& [n, s] : nodeSockets_)
      if (isSocket(s)) {
        path = s;
        break;
      }
  if (path.empty())
    return unavailable("no agent reachable: " + socket_ +
                       " does not exist (is lxmigd running? `lxmig testbed up` for the test bed)");
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto ch = grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
  return Target{v1::Agent::NewStub(ch), node, path};
}

std::vector<std::string> Connector::nodes() {
  if (!hasStore_ || membersAsked_) return nodeNames_;
  membersAsked_ = true;
  auto rp = call(*this, "", &v1::Agent::Stub::Members, v1::MembersRequest{}, 10);
  // Without an answer from the agent or from etcd, the file's names.
  if (!rp.ok() || !rp->store_error().empty()) return nodeNames_;
  nodeNames_.clear();
  for (const auto& m : rp->members())
    if (m.live() || !m.address().empty()) nodeNames_.push_back(m.name());
  return nodeNames_;
}

Result<Target> Connector::onThisMachine(const std::string& node) {
  std::string path = node.empty() && isSocket(socket_) ? socket_ : "";
  for (const auto& [n, s] : nodeSockets_)
    if (path.empty() && n == node && isSocket(s)) path = s;
  if (path.empty())
    return failedPrecondition(node.empty()
                                  ? "no local agent at " + socket_ + " (name the node of this machine with --node)"
                                  : "node `" + node + "` has no agent socket on this machine: run it on " + node);
  auto ch = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
  return Target{v1::Agent::NewStub(ch), node, path};
}

Result<std::string> Connector::nodeOf(const std::string& container, const std::string& node) {
  if (!node.empty()) return node;
  v1::ListContainersRequest rq;
  rq.set_all_nodes(true);
  LXMIG_ASSIGN_OR_RETURN(auto rp, call(*this, "", &v1::Agent::Stub::ListContainers, rq, 15));
  for (const auto& c : rp.containers())
    if (c.name() == container) return c.node();
  std::string extra;
  for (const auto& u : rp.unreachable()) extra += "; unreachable " + u;
  return notFound("no container `" + container + "` on any node" + extra);
}

std::string defaultClusterFile() {
  if (const char* e = std::getenv("LXMIG_CLUSTER")) return e;
  std::string prefix = std::getenv("LXMIG_TESTBED_PREFIX") ? std::getenv("LXMIG_TESTBED_PREFIX") : "lxmig";
  std::string tb = "/run/" + prefix + "-testbed/cluster.toml";
  if (pathExists(tb)) return tb;
  return "/etc/lxmig/cluster.toml";
}

}  // namespace lxmig::cli
