// The other nodes, as a migration talks to them: the source drives a
// target through PREPARE, bulk streams, PRELAYOUT, RESTORE and COMMIT or
// ABORT; settling asks peers what became of a migration. Every call has a
// deadline. NodePeers (node_host.h) implements this over gRPC with mutual
// TLS and the data link; unit tests use fakes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/transport/data_link.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::migration {

// One peer node. A call it does not answer in time is Unavailable
// ("target NODE unreachable: ..."); its refusals keep their codes.
class Peer {
 public:
  virtual ~Peer() = default;
  virtual const std::string& name() const = 0;
  // Waits for a peer that is (re)connecting until the deadline.
  virtual Result<v1::PrepareReply> prepare(const v1::PrepareRequest& req) = 0;
  // A bulk stream on the peer's data link (port from its PrepareReply).
  virtual Result<std::unique_ptr<transport::ChunkWriter>> openDataLink(uint16_t port) = 0;
  // A bulk stream over the Transfer RPC (the fallback).
  virtual std::unique_ptr<transport::ChunkWriter> openRpcStream() = 0;
  virtual Status prelayout(const v1::PrelayoutRequest& req) = 0;
  // Room for a container that grew since PREPARE; ResourceExhausted with the
  // sizes when the peer has none.
  virtual Status reserve(const v1::ReserveRequest& req) = 0;
  virtual Result<v1::RestoreReply> restore(const v1::RestoreRequest& req) = 0;
  // FailedPrecondition: prepared there but not restored; NotFound: the peer
  // has no trace of the migration.
  virtual Status commit(const std::string& migrationId) = 0;
  // unlessRestored: see v1::AbortRequest.
  virtual Status abort(const std::string& migrationId, const std::string& reason, int seconds,
                       bool unlessRestored = false) = 0;
};

class Peers {
 public:
  virtual ~Peers() = default;
  // NotFound for a node the cluster does not know.
  virtual Result<std::unique_ptr<Peer>> connect(const std::string& node) = 0;
  // Every other node of the cluster.
  virtual std::vector<std::string> names() = 0;
  // The containers `node` runs (its own only).
  virtual Result<std::vector<v1::ContainerInfo>> containers(const std::string& node, int seconds) = 0;
};

}  // namespace lxmig::migration
