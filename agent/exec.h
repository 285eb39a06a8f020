// lxmig exec's stream, on the node that runs the container (serveExec)
// or relayed to the peer that does (relayExec). Private to the agent.
#pragma once

#include <string>

#include "lxmig/node/node.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::agent {

using ExecStream = grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>;

// Runs `start` in its container: the caller's inputs go to the command,
// its output to the caller as it comes, then its exit. A caller that goes
// away ends the command (SIGKILL); so does its timeout.
grpc::Status serveExec(node::Node& node, grpc::ServerContext* ctx, ExecStream* stream, const v1::ExecRequest& start);

// The same call on `target`'s agent, both ways, `start` first.
grpc::Status relayExec(node::Node& node, const std::string& target, grpc::ServerContext* ctx, ExecStream* stream,
                       const v1::ExecInput& start);

}  // namespace lxmig::agent
