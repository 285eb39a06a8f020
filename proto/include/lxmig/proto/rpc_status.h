// lxmig::Status <-> grpc::Status, one mapping for the agent and the CLI.
#pragma once

#include <grpcpp/support/status.h>

#include "lxmig/base/status.h"

namespace lxmig {

grpc::Status toGrpc(const Status& s);
Code codeFromGrpc(grpc::StatusCode c);
// The peer's message as it is, with the mapped code.
Status fromGrpc(const grpc::Status& s);
// A peer agent's answer: a peer that refuses or does not answer in time is
// Unavailable, "target NODE unreachable: ...".
Status fromPeerGrpc(const std::string& peer, const grpc::Status& s);

}  // namespace lxmig
