#include "service.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "lxmig/node/doctor.h"
#include "lxmig/base/log.h"
#include "lxmig/grouping/scan_json.h"
#include "lxmig/proto/vocabulary.h"

namespace lxmig::agent {

using node::Node;
using migration::runMigration;
using node::runDoctor;
namespace devices = container::devices;
namespace {

v1::MigrationReport fromRecord(const store::MigrationRecord& m) {
  v1::MigrationReport r;
  r.set_id(m.id);
  r.set_container(m.container);
  r.set_source(m.source);
  r.set_target(m.target);
  v1::MigrationMode mode = v1::MODE_AUTO;
  v1::MigrationResult result = v1::RESULT_UNSPECIFIED;
  (void)parse(m.mode, &mode);
  (void)parse(m.result, &result);
  r.set_mode(mode);
  r.set_result(result);
  r.set_error(m.error);
  r.set_started_ms(m.startedMs);
  r.set_downtime_ms(m.downtimeMs);
  r.set_total_ms(m.totalMs);
  r.set_bytes(m.bytes);
  r.set_reason(m.reason);
  for (const auto& p : m.phases) {
    auto* ph = r.add_phases();
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    v1::PhaseResult pr = v1::PHASE_RESULT_UNSPECIFIED;
    (void)parse(p.name, &phase);
    (void)parse(p.result, &pr);
    ph->set_phase(phase);
    ph->set_started_ms(p.startedMs);
    ph->set_duration_ms(p.endedMs ? p.endedMs - p.startedMs : -1);
    ph->set_bytes(p.bytes);
    ph->set_result(pr);
    ph->set_error(p.error);
    ph->set_detail(p.detail);
  }
  v1::Tracker tracker = v1::TRACKER_NONE;
  (void)parse(m.tracker, &tracker);
  r.set_tracker(tracker);
  for (const auto& x : m.rounds) {
    auto* rp = r.add_rounds();
    rp->set_round(x.round);
    rp->set_started_ms(x.startedMs);
    rp->set_duration_ms(x.durationMs);
    rp->set_scan_us(x.scanUs);
    rp->set_processes(static_cast<uint32_t>(x.processes));
    rp->set_dirty_pages(static_cast<uint64_t>(x.dirtyPages));
    rp->set_pages_sent(static_cast<uint64_t>(x.pagesSent));
    rp->set_bytes(static_cast<uint64_t>(x.bytes));
    rp->set_dirty_rate_bps(x.dirtyRateBps);
    rp->set_send_rate_bps(x.sendRateBps);
    rp->set_predicted_downtime_ms(x.predictedDowntimeMs);
    rp->set_stop(x.stop);
  }
  return r;
}

// Calls the same unary method on a peer.
template <typename Req, typename Rep, typename Fn>
grpc::Status forward(Node& node, const std::string& target, const Req& req, Rep* rep, Fn method, int seconds) {
  auto stub = node.peer(target);
  if (!stub.ok()) return toGrpc(stub.status());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  grpc::Status st = ((**stub).*method)(&ctx, req, rep);
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE)
    return grpc::Status(st.error_code(), "node " + target + " unreachable: " + st.error_message());
  return st;
}

}  // namespace

grpc::Status AgentService::GetNode(grpc::ServerContext*, const v1::GetNodeRequest* req, v1::NodeInfo* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::GetNode, 10);
  *rep = node_.nodeInfo();
  return grpc::Status::OK;
}

grpc::Status AgentService::ListContainers(grpc::ServerContext*, const v1::ListContainersRequest* req,
                                          v1::ListContainersReply* rep) {
  if (!req->all_nodes()) {
    if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::ListContainers, 10);
    for (auto& c : node_.list()) *rep->add_containers() = std::move(c);
    return grpc::Status::OK;
  }
  for (auto& c : node_.list()) *rep->add_containers() = std::move(c);
  for (const auto& p : node_.peerNames()) {
    v1::ListContainersRequest one;
    one.set_node(p);
    v1::ListContainersReply r;
    auto st = forward(node_, p, one, &r, &v1::Agent::Stub::ListContainers, 5);
    if (!st.ok()) {
      rep->add_unreachable(p + ": " + st.error_message());
      continue;
    }
    for (auto& c : *r.mutable_containers()) *rep->add_containers() = std::move(c);
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::RunContainer(grpc::ServerContext*, const v1::RunContainerRequest* req,
                                        v1::ContainerInfo* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::RunContainer, 120);
  auto r = node_.run(*req);
  if (!r.ok()) return toGrpc(r.status());
  *rep = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest* req,
                                           v1::RemoveContainerReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::RemoveContainer, 60);
  return toGrpc(node_.remove(req->name()));
}

grpc::Status AgentService::Exec(grpc::ServerContext*, const v1::ExecRequest* req, v1::ExecReply* rep) {
  int secs = req->timeout_ms() ? static_cast<int>(req->timeout_ms() / 1000) + 10 : 75;
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::Exec, secs);
  auto r = node_.exec(*req);
  if (!r.ok()) return toGrpc(r.status());
  *rep = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::Devices(grpc::ServerContext*, const v1::DevicesRequest* req, v1::DevicesReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::Devices, 20);
  auto need = node_.deviceNeeds(req->container());
  if (!need.ok()) return toGrpc(need.status());
  rep->set_node(node_.config().node);
  for (const auto& d : *need) *rep->add_needed() = devices::toProto(d);
  return grpc::Status::OK;
}

grpc::Status AgentService::Firewall(grpc::ServerContext*, const v1::FirewallRequest* req, v1::FirewallReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::Firewall, 20);
  const std::string& name = req->container();
  auto spec = node_.spec(name);
  if (!spec.ok()) return toGrpc(spec.status());
  auto& fw = node_.firewall();
  // A change while the container migrates could miss the export: refused.
  bool changes = req->op() != v1::FirewallRequest::LIST;
  if (changes)
    if (auto st = node_.reserve(name, "changing its firewall rules"); !st.ok()) return toGrpc(st);
  struct Unreserve {
    Node& n;
    const std::string& name;
    bool on;
    ~Unreserve() {
      if (on) n.unreserve(name);
    }
  } unres{node_, name, changes};
  switch (req->op()) {
    case v1::FirewallRequest::ADD: {
      auto r = fw.addRule(name, req->rule());
      if (!r.ok()) return toGrpc(r.status());
      rep->mutable_added()->set_handle(r->handle);
      rep->mutable_added()->set_text(r->text);
      break;
    }
    case v1::FirewallRequest::DELETE:
      if (auto st = fw.deleteRule(name, req->handle()); !st.ok()) return toGrpc(st);
      break;
    default:
      break;
  }
  auto rules = fw.listRules(name);
  if (!rules.ok()) return toGrpc(rules.status());
  rep->set_node(node_.config().node);
  for (const auto& r : *rules) {
    auto* x = rep->add_rules();
    x->set_handle(r.handle);
    x->set_text(r.text);
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::Groups(grpc::ServerContext*, const v1::GroupsRequest* req, v1::GroupsReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::Groups, 60);
  grouping::Selection sel;
  sel.all = req->all();
  sel.pid = req->pid();
  sel.container = req->container();
  auto j = grouping::scanAndSelect(sel, node_.config().node);
  if (!j.ok()) return toGrpc(j.status());
  rep->set_scan_json(std::move(*j));
  return grpc::Status::OK;
}

grpc::Status AgentService::Doctor(grpc::ServerContext*, const v1::DoctorRequest* req, v1::DoctorReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::Doctor, 60);
  *rep = runDoctor(node_.config().node);
  return grpc::Status::OK;
}

grpc::Status AgentService::Migrate(grpc::ServerContext* ctx, const v1::MigrateRequest* req,
                                   grpc::ServerWriter<v1::MigrateEvent>* writer) {
  if (remote(req->node())) {
    auto stub = node_.peer(req->node());
    if (!stub.ok()) return toGrpc(stub.status());
    grpc::ClientContext cctx;
    cctx.set_wait_for_ready(true);
    auto reader = (*stub)->Migrate(&cctx, *req);
    // Phases can be silent for minutes (waiting for a lazy restore to fill
    // memory): pass the client's cancel on as soon as it comes, not with
    // the next event.
    std::atomic<bool> over{false};
    std::thread relay([&] {
      while (!over.load()) {
        if (ctx->IsCancelled()) {
          cctx.TryCancel();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    v1::MigrateEvent ev;
    while (reader->Read(&ev)) writer->Write(ev);
    grpc::Status st = reader->Finish();
    over = true;
    relay.join();
    return st;
  }
  auto report = runMigration(
      node_, *req,
      [&](const v1::Progress& p) {
        v1::MigrateEvent ev;
        *ev.mutable_progress() = p;
        writer->Write(ev);
      },
      [&] { return ctx->IsCancelled(); });
  v1::MigrateEvent ev;
  *ev.mutable_report() = report;
  writer->Write(ev);
  return grpc::Status::OK;
}

grpc::Status AgentService::ListMigrations(grpc::ServerContext*, const v1::ListMigrationsRequest* req,
                                          v1::ListMigrationsReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::ListMigrations, 10);
  store::MigrationFilter f;
  f.container = req->container();
  if (req->limit() > 0) f.limit = req->limit();
  auto r = node_.audit().listMigrations(f);
  if (!r.ok()) return toGrpc(r.status());
  for (const auto& m : *r) *rep->add_migrations() = fromRecord(m);
  return grpc::Status::OK;
}

grpc::Status AgentService::GetMigration(grpc::ServerContext*, const v1::GetMigrationRequest* req,
                                        v1::MigrationReport* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Agent::Stub::GetMigration, 10);
  auto r = node_.audit().getMigration(req->id());
  if (!r.ok()) return toGrpc(r.status());
  *rep = fromRecord(*r);
  auto ev = node_.audit().events(r->id);
  if (ev.ok())
    for (const auto& e : *ev) rep->add_events(e.level + ": " + e.text);
  return grpc::Status::OK;
}

grpc::Status AgentService::Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* rep) {
  // A request that waited past its deadline (agent stopped, overloaded)
  // must not reserve anything: its source has already given up.
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "prepare arrived after its deadline");
  Status st = incoming_.prepare(*req);
  if (st.ok()) rep->set_data_port(node_.dataPort());
  return toGrpc(st);
}

grpc::Status AgentService::Transfer(grpc::ServerContext*, grpc::ServerReader<v1::TransferChunk>* reader,
                                    v1::TransferReply* rep) {
  auto r = incoming_.receive([reader](v1::TransferChunk& c) -> Result<bool> { return reader->Read(&c); }, true);
  if (!r.ok()) return toGrpc(r.status());
  *rep = *r;
  return grpc::Status::OK;
}

grpc::Status AgentService::Prelayout(grpc::ServerContext*, const v1::PrelayoutRequest* req, v1::Ack*) {
  return toGrpc(incoming_.prelayout(*req));
}

grpc::Status AgentService::Restore(grpc::ServerContext*, const v1::RestoreRequest* req, v1::RestoreReply* rep) {
  auto r = incoming_.restore(req->migration_id(), req->lazy(), req->net());
  if (!r.ok()) return toGrpc(r.status());
  *rep = *r;
  return grpc::Status::OK;
}

grpc::Status AgentService::Commit(grpc::ServerContext*, const v1::MigrationRef* req, v1::Ack*) {
  return toGrpc(incoming_.commit(req->migration_id()));
}

grpc::Status AgentService::Abort(grpc::ServerContext*, const v1::AbortRequest* req, v1::Ack*) {
  return toGrpc(incoming_.abort(req->migration_id(), req->reason()));
}

}  // namespace lxmig::agent
