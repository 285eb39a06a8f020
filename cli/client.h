// How the CLI reaches agents: the local agent's socket, or a test-bed node's
// own socket from the cluster file; requests naming another node are
// forwarded by the agent over mutual TLS.
//
//   Connector conn(socket, defaultClusterFile());
//   v1::GetNodeRequest rq;
//   rq.set_node("n2");
//   Result<v1::NodeInfo> info = call(conn, "n2", &v1::Agent::Stub::GetNode, rq, 10);
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::cli {

struct Target {
  std::unique_ptr<v1::Agent::Stub> stub;
  std::string node;  // goes into the request's `node` field ("" = whoever answers)
  std::string via;   // socket path, for messages
};

class Connector {
 public:
  Connector(std::string socket, std::string clusterFile);
  // A stub that answers for `node` ("" = the local agent or the first node).
  Result<Target> forNode(const std::string& node);
  // The agent of `node` on this machine itself (its socket from the cluster
  // file; "" = the local agent's socket), never one that would forward:
  // for commands that act on this machine's processes (lxmig adopt).
  Result<Target> onThisMachine(const std::string& node);
  // Every node known from the cluster file (or just the local agent); with
  // a cluster store ([store] in the file), the nodes the local agent knows
  // (the file's and those registered under a live lease), asked once.
  std::vector<std::string> nodes();
  // Whether the cluster file names a cluster store (etcd).
  bool hasStore() const { return hasStore_; }
  // The node `container` runs on: `node` as it is when given (--node),
  // else the one whose agent lists it. NotFound names the nodes that did
  // not answer.
  Result<std::string> nodeOf(const std::string& container, const std::string& node);

 private:
  std::string socket_;
  std::string clusterFile_;
  std::vector<std::string> nodeNames_;
  bool hasStore_ = false;
  bool membersAsked_ = false;
  std::vector<std::pair<std::string, std::string>> nodeSockets_;  // name -> socket
};

// $LXMIG_CLUSTER, else the test bed's cluster file when it is up, else
// /etc/lxmig/cluster.toml.
std::string defaultClusterFile();

// A unary method of the agent, e.g. &v1::Agent::Stub::GetNode.
template <typename Req, typename Rep>
using AgentMethod = grpc::Status (v1::Agent::Stub::*)(grpc::ClientContext*, const Req&, Rep*);

// Calls `method` on `target`, giving up after `seconds`; the agent's error
// comes back with its message as it is.
template <typename Req, typename Rep>
Result<Rep> call(Target& target, AgentMethod<Req, Rep> method, const Req& req, int seconds) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  Rep rep;
  if (Status st = fromGrpc((target.stub.get()->*method)(&ctx, req, &rep)); !st.ok()) return st;
  return rep;
}

// A step of one node that streams its progress, then its reply (lxmig
// adopt, merge), e.g. &v1::Agent::Stub::Merge.
template <typename Req>
using StepMethod = std::unique_ptr<grpc::ClientReader<v1::StepEvent>> (v1::Agent::Stub::*)(grpc::ClientContext*,
                                                                                           const Req&);

// Runs `method` on `target`, giving up after `seconds`; `onProgress` (may
// be empty) hears each progress event. Returns the last event, the reply.
template <typename Req>
Result<v1::StepEvent> callStep(Target& target, StepMethod<Req> method, const Req& req, int seconds,
                               const std::function<void(const v1::Progress&)>& onProgress) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  auto reader = (target.stub.get()->*method)(&ctx, req);
  v1::StepEvent ev, reply;
  bool replied = false;
  while (reader->Read(&ev)) {
    if (ev.has_progress()) {
      if (onProgress) onProgress(ev.progress());
    } else {
      reply = ev;
      replied = true;
    }
  }
  if (Status st = fromGrpc(reader->Finish()); !st.ok()) return st;
  if (!replied) return internalError("the agent ended the step without its reply");
  return reply;
}

// The same on the agent that answers for `node` (Connector::forNode).
template <typename Req, typename Rep>
Result<Rep> call(Connector& conn, const std::string& node, AgentMethod<Req, Rep> method, const Req& req, int seconds) {
  LXMIG_ASSIGN_OR_RETURN(Target target, conn.forNode(node));
  return call(target, method, req, seconds);
}

}  // namespace lxmig::cli
