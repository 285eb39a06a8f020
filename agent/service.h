// lxmigd's two gRPC services (proto/lxmig/v1/agent.proto; who may call
// what: docs/security.md).
//
//   AgentService  the operator's, on the local Unix socket (mode 0600): every
//                 command; one naming another node is forwarded to that
//                 node's PeerService.
//   PeerService   on TCP with mutual TLS, for the other nodes only: each call
//                 first proves its caller is a node of the inventory (the
//                 names in its certificate), then the migration protocol acts
//                 for migrations that caller is the source of, reads are
//                 answered, and operator commands forwarded by it are served
//                 (or refused with accept_forwarded = false), one hop only.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lxmig/migration/node_host.h"
#include "lxmig/migration/settle.h"
#include "lxmig/migration/source.h"
#include "lxmig/migration/target.h"
#include "lxmig/node/criu_cache.h"
#include "lxmig/node/node.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::agent {

class AgentService final : public v1::Agent::Service {
 public:
  explicit AgentService(node::Node& node)
      : node_(node),
        host_(node),
        peers_(node),
        target_(host_, node.audit(), node.reservations(),
                {.maxIncoming = node.config().maxIncomingCount(),
                 .idmapBase = node.config().idmapRange().first,
                 .idmapSize = node.config().idmapRange().second,
                 .lazyInUserns = node::criuLazyInUserns(),
                 .heldShmem = node.config().criuHeldShmem != "off" && node::criuTakesHeldShmem(),
                 .pagemapOffsets = node.config().criuPagemapOffsets != "off" && node::criuReadsPagemapOffsets()}),
        frozen_(host_, peers_, node.audit(), node.reservations()) {}
  ~AgentService() { stopDetached(); }
  // Cancels the migrations started with --detach that still run (before
  // their commit they roll back) and joins their threads; new ones are
  // refused. Called when the agent stops, before the node goes.
  void stopDetached();
  // The migrations this node receives.
  migration::Target& target() { return target_; }
  // Frozen copies left by interrupted migrations.
  migration::FrozenCopies& frozen() { return frozen_; }

  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*, v1::NodeInfo*) override;
  grpc::Status ListContainers(grpc::ServerContext*, const v1::ListContainersRequest*,
                              v1::ListContainersReply*) override;
  grpc::Status RunContainer(grpc::ServerContext*, const v1::RunContainerRequest*, v1::ContainerInfo*) override;
  grpc::Status RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest*,
                               v1::RemoveContainerReply*) override;
  grpc::Status Exec(grpc::ServerContext*, grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>*) override;
  // Exec once its first input (`start`) is read: for PeerService too.
  grpc::Status exec(grpc::ServerContext*, grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>*,
                    const v1::ExecInput& start);
  grpc::Status Devices(grpc::ServerContext*, const v1::DevicesRequest* req, v1::DevicesReply* rep) override;
  grpc::Status Firewall(grpc::ServerContext*, const v1::FirewallRequest* req, v1::FirewallReply* rep) override;
  grpc::Status Doctor(grpc::ServerContext*, const v1::DoctorRequest*, v1::DoctorReply*) override;
  grpc::Status Groups(grpc::ServerContext*, const v1::GroupsRequest*, v1::GroupsReply*) override;
  grpc::Status Migrate(grpc::ServerContext*, const v1::MigrateRequest*, grpc::ServerWriter<v1::MigrateEvent>*) override;
  grpc::Status ListMigrations(grpc::ServerContext*, const v1::ListMigrationsRequest*,
                              v1::ListMigrationsReply*) override;
  grpc::Status GetMigration(grpc::ServerContext*, const v1::GetMigrationRequest*, v1::MigrationReport*) override;
  grpc::Status CancelMigration(grpc::ServerContext*, const v1::CancelMigrationRequest*,
                               v1::CancelMigrationReply*) override;
  grpc::Status AuditQuery(grpc::ServerContext*, const v1::AuditQueryRequest*, v1::AuditQueryReply*) override;
  grpc::Status Logs(grpc::ServerContext*, const v1::LogsRequest*, v1::LogsReply*) override;
  grpc::Status Pin(grpc::ServerContext*, const v1::PinRequest*, v1::PinReply*) override;
  grpc::Status RecordDecisions(grpc::ServerContext*, const v1::RecordDecisionsRequest*,
                               v1::RecordDecisionsReply*) override;
  grpc::Status Adopt(grpc::ServerContext*, const v1::AdoptRequest*, grpc::ServerWriter<v1::StepEvent>*) override;
  grpc::Status Merge(grpc::ServerContext*, const v1::MergeRequest*, grpc::ServerWriter<v1::StepEvent>*) override;
  grpc::Status Members(grpc::ServerContext*, const v1::MembersRequest*, v1::MembersReply*) override;
  grpc::Status Hold(grpc::ServerContext*, const v1::HoldRequest*, grpc::ServerWriter<v1::HoldEvent>*) override;
  grpc::Status Checkpoint(grpc::ServerContext*,
                          grpc::ServerReaderWriter<v1::CheckpointOutput, v1::CheckpointInput>*) override;
  grpc::Status RestoreCheckpoint(grpc::ServerContext*,
                                 grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>*) override;
  // The same once their first message (`start`) is read: for PeerService too.
  grpc::Status checkpoint(grpc::ServerContext*, grpc::ServerReaderWriter<v1::CheckpointOutput, v1::CheckpointInput>*,
                          const v1::CheckpointInput& start);
  grpc::Status restoreCheckpoint(grpc::ServerContext*, grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>*,
                                 const v1::ImportInput& start);

 private:
  bool remote(const std::string& node) const { return !node.empty() && node != node_.config().node; }
  node::Node& node_;
  migration::NodeHost host_;
  migration::NodePeers peers_;
  migration::Target target_;
  migration::FrozenCopies frozen_;
  // Migrations this node runs as their source, for CancelMigration; an
  // entry goes before its Source does (under the lock).
  std::mutex runningMu_;
  std::map<std::string, migration::Source*> running_;

  // A migration as its source, start to end.
  std::unique_ptr<migration::Source> newSource(const v1::MigrateRequest& req, migration::ProgressFn progress,
                                               migration::CancelledFn cancelled);
  // What a Source of this node works with, toward `peers` (the cluster's,
  // or a checkpoint file's).
  migration::SourceContext sourceContext(migration::Peers& peers);
  // The container's move lock in the cluster store: its name ("" when there
  // is no store or it did not answer), or FailedPrecondition naming the
  // holder.
  Result<std::string> lockForMove(const migration::Source& source, const std::string& container);
  // Who holds a container's move lock: "NODE migration ID".
  std::string moveLockHolder(const std::string& id) const;
  // Runs `source` to its end, findable by CancelMigration meanwhile; then
  // releases `lockName`.
  v1::MigrationReport runSource(migration::Source& source, const std::string& container, const std::string& lockName);
  grpc::Status detach(const v1::MigrateRequest& req, grpc::ServerWriter<v1::MigrateEvent>* writer);

  struct Detached {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex detachedMu_;
  std::vector<std::unique_ptr<Detached>> detached_;
  std::atomic<bool> stopping_{false};
  // lxmig exec sessions served or relayed now (each holds two threads).
  std::atomic<int> execs_{0};
};

class PeerService final : public v1::Peer::Service {
 public:
  // Both outlive this service.
  PeerService(node::Node& node, AgentService& ops) : node_(node), ops_(ops), target_(ops.target()) {}

  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*, v1::NodeInfo*) override;
  grpc::Status ListContainers(grpc::ServerContext*, const v1::ListContainersRequest*,
                              v1::ListContainersReply*) override;
  grpc::Status ListMigrations(grpc::ServerContext*, const v1::ListMigrationsRequest*,
                              v1::ListMigrationsReply*) override;
  grpc::Status GetMigration(grpc::ServerContext*, const v1::GetMigrationRequest*, v1::MigrationReport*) override;
  grpc::Status AuditQuery(grpc::ServerContext*, const v1::AuditQueryRequest*, v1::AuditQueryReply*) override;
  grpc::Status Logs(grpc::ServerContext*, const v1::LogsRequest*, v1::LogsReply*) override;
  grpc::Status Pin(grpc::ServerContext*, const v1::PinRequest*, v1::PinReply*) override;
  grpc::Status CancelMigration(grpc::ServerContext*, const v1::CancelMigrationRequest*,
                               v1::CancelMigrationReply*) override;
  grpc::Status Devices(grpc::ServerContext*, const v1::DevicesRequest*, v1::DevicesReply*) override;
  grpc::Status Doctor(grpc::ServerContext*, const v1::DoctorRequest*, v1::DoctorReply*) override;
  grpc::Status Groups(grpc::ServerContext*, const v1::GroupsRequest*, v1::GroupsReply*) override;

  grpc::Status RunContainer(grpc::ServerContext*, const v1::RunContainerRequest*, v1::ContainerInfo*) override;
  grpc::Status RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest*,
                               v1::RemoveContainerReply*) override;
  grpc::Status Exec(grpc::ServerContext*, grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>*) override;
  grpc::Status Firewall(grpc::ServerContext*, const v1::FirewallRequest*, v1::FirewallReply*) override;
  grpc::Status Migrate(grpc::ServerContext*, const v1::MigrateRequest*, grpc::ServerWriter<v1::MigrateEvent>*) override;
  grpc::Status Merge(grpc::ServerContext*, const v1::MergeRequest*, grpc::ServerWriter<v1::StepEvent>*) override;
  grpc::Status Checkpoint(grpc::ServerContext*,
                          grpc::ServerReaderWriter<v1::CheckpointOutput, v1::CheckpointInput>*) override;
  grpc::Status RestoreCheckpoint(grpc::ServerContext*,
                                 grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>*) override;

  grpc::Status Prepare(grpc::ServerContext*, const v1::PrepareRequest*, v1::PrepareReply*) override;
  grpc::Status Transfer(grpc::ServerContext*, grpc::ServerReader<v1::TransferChunk>*, v1::TransferReply*) override;
  grpc::Status Prelayout(grpc::ServerContext*, const v1::PrelayoutRequest*, v1::Ack*) override;
  grpc::Status Reserve(grpc::ServerContext*, const v1::ReserveRequest*, v1::Ack*) override;
  grpc::Status Restore(grpc::ServerContext*, const v1::RestoreRequest*, v1::RestoreReply*) override;
  grpc::Status Commit(grpc::ServerContext*, const v1::MigrationRef*, v1::Ack*) override;
  grpc::Status Abort(grpc::ServerContext*, const v1::AbortRequest*, v1::Ack*) override;

 private:
  // The node of the inventory the caller's certificate names.
  Result<std::string> caller(const grpc::ServerContext* ctx);
  // The same, for a request that may name a node: it must be this one.
  Result<std::string> callerForHere(const grpc::ServerContext* ctx, const std::string& node);
  // The same, for an operator command another node forwards: allowed by
  // accept_forwarded, and recorded as a node event either way.
  Result<std::string> forwarded(const grpc::ServerContext* ctx, const std::string& node, const std::string& what);

  node::Node& node_;
  AgentService& ops_;
  migration::Target& target_;
};

}  // namespace lxmig::agent
