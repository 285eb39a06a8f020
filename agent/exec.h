// lxmig exec's stream on the node that runs the container (relayed to it
// by streams.h's relayBoth otherwise). Private to the agent.
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

}  // namespace lxmig::agent
