// How the CLI reaches agents: the local agent's socket, or a test-bed node's
// own socket from the cluster file; requests naming another node are
// forwarded by the agent over mutual TLS.
#pragma once

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
  // Every node known from the cluster file (or just the local agent).
  std::vector<std::string> nodes() const { return nodeNames_; }
  // Finds the node running `container`.
  Result<std::string> locate(const std::string& container);
  const std::string& clusterFile() const { return clusterFile_; }

 private:
  std::string socket_;
  std::string clusterFile_;
  std::vector<std::string> nodeNames_;
  std::vector<std::pair<std::string, std::string>> nodeSockets_;  // name -> socket
};


}  // namespace lxmig::cli
