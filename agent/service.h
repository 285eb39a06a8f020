// gRPC service of lxmigd: the same service on the local Unix socket and on
// the mutual-TLS peer port. Requests naming another node are forwarded.
#pragma once

#include "lxmig/migration/node_host.h"
#include "lxmig/migration/settle.h"
#include "lxmig/migration/target.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/v1/agent.grpc.pb.h"
#include "lxmig/node/node.h"

namespace lxmig::agent {

class AgentService final : public v1::Agent::Service {
 public:
  explicit AgentService(node::Node& node)
      : node_(node),
        host_(node),
        peers_(node),
        target_(host_, node.audit(), node.reservations()),
        frozen_(host_, peers_, node.audit(), node.reservations()) {}
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
  grpc::Status Exec(grpc::ServerContext*, const v1::ExecRequest*, v1::ExecReply*) override;
  grpc::Status Devices(grpc::ServerContext*, const v1::DevicesRequest* req, v1::DevicesReply* rep) override;
  grpc::Status Firewall(grpc::ServerContext*, const v1::FirewallRequest* req, v1::FirewallReply* rep) override;
  grpc::Status Doctor(grpc::ServerContext*, const v1::DoctorRequest*, v1::DoctorReply*) override;
  grpc::Status Groups(grpc::ServerContext*, const v1::GroupsRequest*, v1::GroupsReply*) override;
  grpc::Status Migrate(grpc::ServerContext*, const v1::MigrateRequest*,
                       grpc::ServerWriter<v1::MigrateEvent>*) override;
  grpc::Status ListMigrations(grpc::ServerContext*, const v1::ListMigrationsRequest*,
                              v1::ListMigrationsReply*) override;
  grpc::Status GetMigration(grpc::ServerContext*, const v1::GetMigrationRequest*, v1::MigrationReport*) override;
  grpc::Status Prepare(grpc::ServerContext*, const v1::PrepareRequest*, v1::PrepareReply*) override;
  grpc::Status Transfer(grpc::ServerContext*, grpc::ServerReader<v1::TransferChunk>*, v1::TransferReply*) override;
  grpc::Status Prelayout(grpc::ServerContext*, const v1::PrelayoutRequest*, v1::Ack*) override;
  grpc::Status Restore(grpc::ServerContext*, const v1::RestoreRequest*, v1::RestoreReply*) override;
  grpc::Status Commit(grpc::ServerContext*, const v1::MigrationRef*, v1::Ack*) override;
  grpc::Status Abort(grpc::ServerContext*, const v1::AbortRequest*, v1::Ack*) override;

 private:
  bool remote(const std::string& node) const { return !node.empty() && node != node_.config().node; }
  node::Node& node_;
  migration::NodeHost host_;
  migration::NodePeers peers_;
  migration::Target target_;
  migration::FrozenCopies frozen_;
};


}  // namespace lxmig::agent
