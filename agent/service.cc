#include "service.h"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "exec.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/grouping/scan_json.h"
#include "lxmig/migration/adopt.h"
#include "lxmig/migration/merge.h"
#include "lxmig/migration/report.h"
#include "lxmig/migration/source.h"
#include "lxmig/node/criu_cache.h"
#include "lxmig/node/doctor.h"
#include "lxmig/proto/vocabulary.h"
#include "lxmig/store/audit_query.h"
#include "streams.h"

namespace lxmig::agent {

using node::Node;
using node::runDoctor;
namespace devices = container::devices;
namespace {

// lxmig exec sessions at once through one agent (each holds two threads).
constexpr int kMaxExecs = 32;

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

// Calls the same server-streaming method on a peer and relays its events
// to `writer` as they come. Phases can be silent for minutes (a lazy
// restore filling memory): the client's cancel is passed on as soon as it
// comes, not with the next event.
template <typename Req, typename Event, typename Fn>
grpc::Status relay(Node& node, const std::string& target, grpc::ServerContext* ctx, const Req& req,
                   grpc::ServerWriter<Event>* writer, Fn method) {
  auto stub = node.peer(target);
  if (!stub.ok()) return toGrpc(stub.status());
  grpc::ClientContext cctx;
  cctx.set_wait_for_ready(true);
  auto reader = ((**stub).*method)(&cctx, req);
  std::atomic<bool> over{false};
  std::thread watch([&] {
    while (!over.load()) {
      if (ctx->IsCancelled()) {
        cctx.TryCancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  Event ev;
  while (reader->Read(&ev)) writer->Write(ev);
  grpc::Status st = reader->Finish();
  over = true;
  watch.join();
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE)
    return grpc::Status(st.error_code(), "node " + target + " unreachable: " + st.error_message());
  return st;
}

}  // namespace

grpc::Status AgentService::GetNode(grpc::ServerContext*, const v1::GetNodeRequest* req, v1::NodeInfo* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::GetNode, 10);
  *rep = node_.nodeInfo();
  return grpc::Status::OK;
}

grpc::Status AgentService::ListContainers(grpc::ServerContext*, const v1::ListContainersRequest* req,
                                          v1::ListContainersReply* rep) {
  if (!req->all_nodes()) {
    if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::ListContainers, 10);
    for (auto& c : node_.list()) *rep->add_containers() = std::move(c);
    return grpc::Status::OK;
  }
  for (auto& c : node_.list()) *rep->add_containers() = std::move(c);
  for (const auto& p : node_.peerNames()) {
    v1::ListContainersRequest one;
    one.set_node(p);
    v1::ListContainersReply r;
    auto st = forward(node_, p, one, &r, &v1::Peer::Stub::ListContainers, 5);
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
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::RunContainer, 120);
  auto r = node_.run(*req);
  if (!r.ok()) return toGrpc(r.status());
  *rep = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status AgentService::RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest* req,
                                           v1::RemoveContainerReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::RemoveContainer, 60);
  return toGrpc(node_.remove(req->name()));
}

grpc::Status AgentService::Exec(grpc::ServerContext* ctx,
                                grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>* stream) {
  v1::ExecInput start;
  if (auto st = readStart(stream, &start, "exec"); !st.ok()) return st;
  return exec(ctx, stream, start);
}

grpc::Status AgentService::exec(grpc::ServerContext* ctx,
                                grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>* stream,
                                const v1::ExecInput& start) {
  if (!start.has_start()) return toGrpc(invalidArgument("exec: the first message must start the command"));
  if (execs_.fetch_add(1) >= kMaxExecs) {
    --execs_;
    return toGrpc(resourceExhausted("exec: " + std::to_string(kMaxExecs) + " commands already run through node " +
                                    node_.config().node + "; try again when one ends"));
  }
  struct Count {
    std::atomic<int>& n;
    ~Count() { --n; }
  } count{execs_};
  if (remote(start.start().node()))
    return relayBoth(node_, start.start().node(), ctx, stream, start, &v1::Peer::Stub::Exec);
  return serveExec(node_, ctx, stream, start.start());
}

grpc::Status AgentService::Devices(grpc::ServerContext*, const v1::DevicesRequest* req, v1::DevicesReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Devices, 20);
  auto need = node_.deviceNeeds(req->container());
  if (!need.ok()) return toGrpc(need.status());
  rep->set_node(node_.config().node);
  for (const auto& d : *need) *rep->add_needed() = devices::toProto(d);
  return grpc::Status::OK;
}

grpc::Status AgentService::Firewall(grpc::ServerContext*, const v1::FirewallRequest* req, v1::FirewallReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Firewall, 20);
  const std::string& name = req->container();
  auto spec = node_.spec(name);
  if (!spec.ok()) return toGrpc(spec.status());
  auto& fw = node_.firewall();
  // A change while the container migrates could miss the export: refused.
  node::Reservation busy;
  if (req->op() != v1::FirewallRequest::LIST) {
    auto r = node_.reserve(name, "changing its firewall rules");
    if (!r.ok()) return toGrpc(r.status());
    busy = std::move(*r);
  }
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
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Groups, 60);
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
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Doctor, 60);
  *rep = runDoctor(node_.config().node);
  node::addImagesCheck(*rep, node_.imagesRoot(), node_.imagesDiskRoot());
  return grpc::Status::OK;
}

std::unique_ptr<migration::Source> AgentService::newSource(const v1::MigrateRequest& req,
                                                           migration::ProgressFn progress,
                                                           migration::CancelledFn cancelled) {
  return std::make_unique<migration::Source>(sourceContext(peers_), req, std::move(progress), std::move(cancelled));
}

migration::SourceContext AgentService::sourceContext(migration::Peers& peers) {
  migration::SourceContext ctx{host_,
                               peers,
                               node_.audit(),
                               node_.reservations(),
                               [this] { node_.requestFrozenCheck(); },
                               int64_t{node_.config().frozenLimitSeconds()} * 1000};
  ctx.criuHeldPages = node_.config().criuHeldPages != "off" && node::criuLeavesOutHeldPages();
  return ctx;
}

std::string AgentService::moveLockHolder(const std::string& id) const {
  return node_.config().node + " migration " + id;
}

Result<std::string> AgentService::lockForMove(const migration::Source& source, const std::string& container) {
  // With a cluster store, the container's move lock for as long as the
  // migration runs (bound to this node's lease): a rebalance planned
  // elsewhere and an operator's migrate never move it at once. Without an
  // answer from etcd the move goes on (this node's reservation already
  // keeps it to one move at a time here), with a warning.
  sched::Membership* m = node_.membership();
  if (!m || !checkContainerName(container).ok()) return std::string();
  auto holder = m->lock("containers/" + container, moveLockHolder(source.id()));
  if (holder.ok() && !holder->empty())
    return failedPrecondition("`" + container + "` is being moved by " + quote(*holder) +
                              " (its cluster lock in etcd)");
  if (holder.ok()) return "containers/" + container;
  LXMIG_LOG(kWarn, "agent") << "migrating `" << container
                            << "` without its cluster lock: " << holder.status().toString();
  return std::string();
}

v1::MigrationReport AgentService::runSource(migration::Source& source, const std::string& container,
                                            const std::string& lockName) {
  {
    std::lock_guard lk(runningMu_);
    running_[source.id()] = &source;
  }
  log::ScopedContext about(source.id(), container);
  auto report = source.run();
  if (!lockName.empty())
    if (auto st = node_.membership()->unlock(lockName, moveLockHolder(source.id())); !st.ok())
      LXMIG_LOG(kWarn, "agent") << "releasing the cluster lock of `" << container << "`: " << st.toString();
  std::lock_guard lk(runningMu_);
  running_.erase(source.id());
  return report;
}

grpc::Status AgentService::Migrate(grpc::ServerContext* ctx, const v1::MigrateRequest* req,
                                   grpc::ServerWriter<v1::MigrateEvent>* writer) {
  if (remote(req->node())) return relay(node_, req->node(), ctx, *req, writer, &v1::Peer::Stub::Migrate);
  if (req->detach()) return detach(*req, writer);
  auto source = newSource(
      *req,
      [&](const v1::Progress& p) {
        v1::MigrateEvent ev;
        *ev.mutable_progress() = p;
        writer->Write(ev);
      },
      [&] { return ctx->IsCancelled(); });
  auto lock = lockForMove(*source, req->container());
  if (!lock.ok()) return toGrpc(lock.status());
  v1::MigrateEvent ev;
  *ev.mutable_report() = runSource(*source, req->container(), *lock);
  writer->Write(ev);
  return grpc::Status::OK;
}

// lxmig migrate --detach: the migration runs on a thread this service owns
// (joined when the agent stops, which cancels it like a client that goes);
// the caller gets the id once the audit has its row, so `lxmig watch ID`,
// `cancel ID` and `audit show ID` find it at once.
grpc::Status AgentService::detach(const v1::MigrateRequest& req, grpc::ServerWriter<v1::MigrateEvent>* writer) {
  auto started = std::make_shared<std::promise<void>>();
  auto once = std::make_shared<std::once_flag>();
  auto source = newSource(
      req, [started, once](const v1::Progress&) { std::call_once(*once, [&] { started->set_value(); }); },
      [this] { return stopping_.load(); });
  auto lock = lockForMove(*source, req.container());
  if (!lock.ok()) return toGrpc(lock.status());
  const std::string id = source->id();
  auto begun = started->get_future();
  {
    std::lock_guard lk(detachedMu_);
    if (stopping_) {
      if (!lock->empty()) (void)node_.membership()->unlock(*lock, moveLockHolder(id));
      return toGrpc(unavailable(node_.config().node + " is stopping"));
    }
    // Finished ones are joined here, so the list stays short.
    for (auto it = detached_.begin(); it != detached_.end();) {
      if ((*it)->done) {
        (*it)->thread.join();
        it = detached_.erase(it);
      } else {
        ++it;
      }
    }
    auto d = std::make_unique<Detached>();
    Detached* self = d.get();
    d->thread = std::thread([this, self, s = std::move(source), container = req.container(), l = *lock]() mutable {
      auto report = runSource(*s, container, l);
      LXMIG_LOG(kInfo, "agent") << "detached migration " << report.id() << " ended: " << name(report.result());
      s.reset();
      self->done = true;
    });
    detached_.push_back(std::move(d));
  }
  // The first event comes right after the audit row is written.
  if (begun.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
    LXMIG_LOG(kWarn, "agent") << "detached migration " << id << " has not begun after 30 s";
  v1::MigrateEvent ev;
  ev.mutable_progress()->set_phase(v1::PHASE_START);
  ev.mutable_progress()->set_migration_id(id);
  ev.mutable_progress()->set_container(req.container());
  writer->Write(ev);
  return grpc::Status::OK;
}

void AgentService::stopDetached() {
  std::vector<std::unique_ptr<Detached>> all;
  {
    std::lock_guard lk(detachedMu_);
    stopping_ = true;
    all.swap(detached_);
  }
  for (auto& d : all) d->thread.join();
}

grpc::Status AgentService::CancelMigration(grpc::ServerContext*, const v1::CancelMigrationRequest* req,
                                           v1::CancelMigrationReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::CancelMigration, 20);
  if (auto st = checkMigrationId(req->id()); !st.ok()) return toGrpc(st);
  // Held while the source is asked: its entry (and so the Source) stays.
  std::lock_guard lk(runningMu_);
  auto it = running_.find(req->id());
  if (it == running_.end()) {
    auto m = node_.audit().getMigration(req->id());
    if (!m.ok() || m->id != req->id() || m->source != node_.config().node)
      return toGrpc(notFound("no migration " + req->id() + " runs from " + node_.config().node));
    // Ended, its container left frozen here until the target answers.
    const bool leftFrozen = m->result != name(v1::RESULT_RUNNING) && node_.lxc().defined(m->container) &&
                            node_.lxc().state(m->container) == container::RunState::kFrozen &&
                            !node_.reservations().why(m->container);
    if (leftFrozen && !req->force())
      return toGrpc(failedPrecondition(
          "migration " + req->id() + " left `" + m->container + "` FROZEN on " + node_.config().node + " until " +
          m->target + " says whether it restored it (settled as soon as it answers); `lxmig cancel --force " +
          req->id() + "` thaws it now, and two copies run if " + m->target + " had restored it"));
    if (leftFrozen) {
      if (auto st = frozen_.thawAnyway(m->container, req->id()); !st.ok()) return toGrpc(st);
      rep->set_container(m->container);
      rep->set_target(m->target);
      rep->set_thawed(true);
      return grpc::Status::OK;
    }
    return toGrpc(
        failedPrecondition("migration " + req->id() + " of `" + m->container + "` already ended: " + m->result));
  }
  if (auto st = it->second->cancel(); !st.ok()) return toGrpc(st);
  auto m = node_.audit().getMigration(req->id());
  if (m.ok()) {
    rep->set_container(m->container);
    rep->set_target(m->target);
  }
  LXMIG_LOG(kInfo, "agent") << "migration " << req->id() << " cancelled by the operator";
  return grpc::Status::OK;
}

grpc::Status AgentService::ListMigrations(grpc::ServerContext*, const v1::ListMigrationsRequest* req,
                                          v1::ListMigrationsReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::ListMigrations, 10);
  store::MigrationFilter f;
  f.container = req->container();
  if (req->limit() > 0) f.limit = req->limit();
  auto r = node_.audit().listMigrations(f);
  if (!r.ok()) return toGrpc(r.status());
  for (const auto& m : *r) *rep->add_migrations() = migration::fromRecord(m);
  return grpc::Status::OK;
}

grpc::Status AgentService::GetMigration(grpc::ServerContext*, const v1::GetMigrationRequest* req,
                                        v1::MigrationReport* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::GetMigration, 10);
  auto r = node_.audit().getMigration(req->id());
  if (!r.ok()) return toGrpc(r.status());
  *rep = migration::fromRecord(*r);
  auto ev = node_.audit().events(r->id);
  if (ev.ok())
    for (const auto& e : *ev) rep->add_events(e.level + ": " + e.text);
  return grpc::Status::OK;
}

grpc::Status AgentService::Logs(grpc::ServerContext*, const v1::LogsRequest* req, v1::LogsReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Logs, 10);
  if (!req->migration().empty())
    if (auto st = checkMigrationId(req->migration()); !st.ok()) return toGrpc(st);
  if (req->limit() > 10000) return toGrpc(invalidArgument("logs: at most 10000 lines at once"));
  log::Level min = log::Level::kInfo;
  if (!req->level().empty() && (!log::parseLevel(req->level(), &min) || min == log::Level::kOff))
    return toGrpc(invalidArgument("bad log level " + quote(req->level()) + " (debug, info, warn or error)"));
  rep->set_node(node_.config().node);
  for (auto& r : log::recent(req->limit() == 0 ? 200 : req->limit(), min, req->migration())) {
    auto* l = rep->add_lines();
    l->set_at_ms(r.atMs);
    l->set_level(std::string(log::levelName(r.level)));
    l->set_category(std::move(r.category));
    l->set_text(std::move(r.text));
    l->set_migration(std::move(r.migration));
    l->set_container(std::move(r.container));
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::AuditQuery(grpc::ServerContext*, const v1::AuditQueryRequest* req,
                                      v1::AuditQueryReply* rep) {
  store::QueryLimits limits;
  if (req->timeout_ms() != 0) limits.timeoutMs = req->timeout_ms();
  if (req->max_rows() != 0) limits.maxRows = req->max_rows() > store::QueryLimits::kMaxRows ? 0 : req->max_rows();
  if (Status st = limits.check(); !st.ok()) return toGrpc(st);
  // The peer gets the query's own time and some for the way.
  const int seconds = static_cast<int>(limits.timeoutMs / 1000) + 10;
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::AuditQuery, seconds);
  auto q = store::AuditQuery::open(node_.config().stateDir + "/audit.db");
  if (!q.ok()) return toGrpc(q.status());
  auto rows = (*q)->run(req->sql(), limits);
  if (!rows.ok()) return toGrpc(rows.status());
  for (const auto& c : rows->columns) rep->add_columns(c);
  for (const auto& row : rows->rows) {
    auto* out = rep->add_rows();
    for (const auto& c : row) {
      auto* cell = out->add_cells();
      switch (c.kind) {
        case store::Cell::Kind::kNull:
          break;
        case store::Cell::Kind::kInteger:
          cell->set_integer(c.integer);
          break;
        case store::Cell::Kind::kReal:
          cell->set_real(c.real);
          break;
        case store::Cell::Kind::kText:
          cell->set_text(c.text);
          break;
        case store::Cell::Kind::kBlob:
          cell->set_blob(c.text);
          break;
      }
    }
  }
  rep->set_truncated(rows->truncated);
  rep->set_elapsed_ms(rows->elapsedMs);
  return grpc::Status::OK;
}

grpc::Status AgentService::Pin(grpc::ServerContext*, const v1::PinRequest* req, v1::PinReply* rep) {
  if (remote(req->node())) return forward(node_, req->node(), *req, rep, &v1::Peer::Stub::Pin, 10);
  auto was = node_.setPinned(req->name(), req->pinned());
  if (!was.ok()) return toGrpc(was.status());
  rep->set_was_pinned(*was);
  return grpc::Status::OK;
}

grpc::Status AgentService::Members(grpc::ServerContext*, const v1::MembersRequest*, v1::MembersReply* rep) {
  const node::Node::Inventory inv = node_.inventory();
  for (const auto& [name, p] : inv.nodes) {
    auto* m = rep->add_members();
    m->set_name(name);
    m->set_address(p.address);
    m->set_in_file(inv.inFile.count(name) != 0);
    m->set_live(inv.live.count(name) != 0);
  }
  rep->set_store(node_.membership() != nullptr);
  rep->set_registered(node_.membership() && node_.membership()->registered());
  rep->set_store_error(inv.storeError);
  return grpc::Status::OK;
}

grpc::Status AgentService::Hold(grpc::ServerContext* ctx, const v1::HoldRequest* req,
                                grpc::ServerWriter<v1::HoldEvent>* writer) {
  sched::Membership* m = node_.membership();
  if (!m)
    return toGrpc(failedPrecondition("no cluster store is configured on " + node_.config().node +
                                     " (lock on this host instead)"));
  auto holder = m->lock(req->lock(), req->holder());
  if (!holder.ok()) return toGrpc(holder.status());
  if (!holder->empty())
    return toGrpc(failedPrecondition("the cluster lock `" + req->lock() + "` is held by " + quote(*holder)));
  const int64_t lost = m->reRegistrations();
  v1::HoldEvent ev;
  ev.set_held(true);
  // Held until the caller closes the call or goes, or the lease is lost.
  if (writer->Write(ev))
    while (!ctx->IsCancelled() && m->reRegistrations() == lost)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (auto st = m->unlock(req->lock(), req->holder()); !st.ok())
    LXMIG_LOG(kWarn, "agent") << "releasing the cluster lock `" << req->lock() << "`: " << st.toString();
  if (m->reRegistrations() != lost)
    return toGrpc(aborted("the cluster lock `" + req->lock() + "` was lost with " + node_.config().node + "'s lease"));
  return grpc::Status::OK;
}

grpc::Status AgentService::RecordDecisions(grpc::ServerContext*, const v1::RecordDecisionsRequest* req,
                                           v1::RecordDecisionsReply*) {
  if (req->decisions_size() > 100000) return toGrpc(invalidArgument("at most 100,000 decisions at once"));
  for (const auto& d : req->decisions()) {
    store::DecisionRecord r;
    r.atMs = d.at_ms();
    r.container = d.container().substr(0, 256);
    r.fromNode = d.from_node().substr(0, 256);
    r.toNode = d.to_node().substr(0, 256);
    r.action = d.action().substr(0, 16);
    r.reason = d.reason().substr(0, 1024);
    if (d.has_scores()) {
      r.scoreBefore = d.score_before();
      r.scoreAfter = d.score_after();
    }
    r.migrationId = d.migration_id().substr(0, 64);
    if (Status st = node_.audit().addDecision(r); !st.ok()) return toGrpc(st);
  }
  return grpc::Status::OK;
}

namespace {

// Progress of a step, streamed to its caller as it comes.
migration::ProgressFn stepProgress(grpc::ServerWriter<v1::StepEvent>* writer) {
  return [writer](const v1::Progress& p) {
    v1::StepEvent ev;
    *ev.mutable_progress() = p;
    writer->Write(ev);
  };
}

}  // namespace

grpc::Status AgentService::Adopt(grpc::ServerContext*, const v1::AdoptRequest* req,
                                 grpc::ServerWriter<v1::StepEvent>* writer) {
  auto r = migration::adopt(node_, *req, stepProgress(writer));
  if (!r.ok()) return toGrpc(r.status());
  v1::StepEvent ev;
  *ev.mutable_adopted() = std::move(*r);
  writer->Write(ev);
  return grpc::Status::OK;
}

grpc::Status AgentService::Merge(grpc::ServerContext* ctx, const v1::MergeRequest* req,
                                 grpc::ServerWriter<v1::StepEvent>* writer) {
  if (remote(req->node())) return relay(node_, req->node(), ctx, *req, writer, &v1::Peer::Stub::Merge);
  auto r = migration::merge(node_, *req, stepProgress(writer));
  if (!r.ok()) return toGrpc(r.status());
  v1::StepEvent ev;
  *ev.mutable_merged() = std::move(*r);
  writer->Write(ev);
  return grpc::Status::OK;
}

// ---- the peer service ----

namespace {

// The log context of a target-side step: the migration's id when it is one
// (a peer's field, so checked first), and the container when known.
log::ScopedContext aboutMigration(const std::string& id, const std::string& container = "") {
  const bool ok = checkMigrationId(id).ok();
  return log::ScopedContext(ok ? id : "", ok && checkContainerName(container).ok() ? container : "");
}

// The names in the caller's certificate, as gRPC's TLS layer reports them.
std::vector<std::string> certificateNames(const grpc::ServerContext* ctx) {
  std::vector<std::string> names;
  auto auth = ctx->auth_context();
  if (!auth) return names;
  for (const char* property : {"x509_subject_alternative_name", "x509_common_name"})
    for (const auto& v : auth->FindPropertyValues(property)) names.emplace_back(v.data(), v.size());
  return names;
}

}  // namespace

Result<std::string> PeerService::caller(const grpc::ServerContext* ctx) {
  return node_.identifyPeer(certificateNames(ctx), "peer port");
}

Result<std::string> PeerService::callerForHere(const grpc::ServerContext* ctx, const std::string& node) {
  LXMIG_ASSIGN_OR_RETURN(std::string peer, caller(ctx));
  if (!node.empty() && node != node_.config().node)
    return Status(Code::kPermissionDenied, "a request from " + peer + " names node " + node.substr(0, 64) +
                                               ": requests are forwarded one hop only");
  return peer;
}

Result<std::string> PeerService::forwarded(const grpc::ServerContext* ctx, const std::string& node,
                                           const std::string& what) {
  LXMIG_ASSIGN_OR_RETURN(std::string peer, callerForHere(ctx, node));
  const bool accepted = node_.config().acceptsForwarded();
  store::NodeEvent e;
  e.level = accepted ? "info" : "warn";
  e.kind = accepted ? "forwarded" : "forward-refused";
  e.peer = peer;
  e.text = what + " forwarded by " + peer + (accepted ? "" : ": refused (accept_forwarded = false)");
  if (Status st = node_.audit().addNodeEvent(e); !st.ok()) LXMIG_LOG(kWarn, "agent") << "audit: " << st.toString();
  if (!accepted)
    return Status(Code::kPermissionDenied, node_.config().node + " accepts no commands forwarded by other nodes (" +
                                               what + " from " + peer + "); run it on " + node_.config().node);
  return peer;
}

// Reads and forwarded commands: the caller must be a node of the cluster
// naming this node (or none); the operator service does the work.
#define LXMIG_PEER_READ(Method, Req, Rep)                                                        \
  grpc::Status PeerService::Method(grpc::ServerContext* ctx, const v1::Req* req, v1::Rep* rep) { \
    if (auto who = callerForHere(ctx, req->node()); !who.ok()) return toGrpc(who.status());      \
    return ops_.Method(ctx, req, rep);                                                           \
  }
#define LXMIG_PEER_FORWARDED(Method, Req, Rep, what)                                             \
  grpc::Status PeerService::Method(grpc::ServerContext* ctx, const v1::Req* req, v1::Rep* rep) { \
    if (auto who = forwarded(ctx, req->node(), what); !who.ok()) return toGrpc(who.status());    \
    return ops_.Method(ctx, req, rep);                                                           \
  }

LXMIG_PEER_READ(GetNode, GetNodeRequest, NodeInfo)
LXMIG_PEER_READ(ListMigrations, ListMigrationsRequest, ListMigrationsReply)
LXMIG_PEER_READ(GetMigration, GetMigrationRequest, MigrationReport)
LXMIG_PEER_READ(Devices, DevicesRequest, DevicesReply)
LXMIG_PEER_READ(Doctor, DoctorRequest, DoctorReply)
LXMIG_PEER_READ(Groups, GroupsRequest, GroupsReply)
LXMIG_PEER_READ(AuditQuery, AuditQueryRequest, AuditQueryReply)
LXMIG_PEER_READ(Logs, LogsRequest, LogsReply)
LXMIG_PEER_FORWARDED(RunContainer, RunContainerRequest, ContainerInfo, "run " + req->name())
LXMIG_PEER_FORWARDED(RemoveContainer, RemoveContainerRequest, RemoveContainerReply, "rm " + req->name())
LXMIG_PEER_FORWARDED(Firewall, FirewallRequest, FirewallReply, "fw " + req->container())
LXMIG_PEER_FORWARDED(Pin, PinRequest, PinReply, std::string(req->pinned() ? "pin " : "unpin ") + req->name())
LXMIG_PEER_FORWARDED(CancelMigration, CancelMigrationRequest, CancelMigrationReply, "cancel " + req->id().substr(0, 64))
#undef LXMIG_PEER_READ
#undef LXMIG_PEER_FORWARDED

grpc::Status PeerService::ListContainers(grpc::ServerContext* ctx, const v1::ListContainersRequest* req,
                                         v1::ListContainersReply* rep) {
  if (auto who = callerForHere(ctx, req->node()); !who.ok()) return toGrpc(who.status());
  v1::ListContainersRequest own = *req;
  own.set_all_nodes(false);  // this node's own containers: a peer asks each node itself
  return ops_.ListContainers(ctx, &own, rep);
}

grpc::Status PeerService::Exec(grpc::ServerContext* ctx,
                               grpc::ServerReaderWriter<v1::ExecOutput, v1::ExecInput>* stream) {
  v1::ExecInput start;
  if (auto st = readStart(stream, &start, "exec"); !st.ok()) return st;
  if (auto who = forwarded(ctx, start.start().node(), "exec " + start.start().name().substr(0, 64)); !who.ok())
    return toGrpc(who.status());
  return ops_.exec(ctx, stream, start);
}

grpc::Status PeerService::Migrate(grpc::ServerContext* ctx, const v1::MigrateRequest* req,
                                  grpc::ServerWriter<v1::MigrateEvent>* writer) {
  if (auto who = forwarded(ctx, req->node(), "migrate " + req->container()); !who.ok()) return toGrpc(who.status());
  return ops_.Migrate(ctx, req, writer);
}

// Adopt is not served to peers: it acts on processes outside lxmig's
// containers, only for the operator of that node (docs/security.md).
grpc::Status PeerService::Merge(grpc::ServerContext* ctx, const v1::MergeRequest* req,
                                grpc::ServerWriter<v1::StepEvent>* writer) {
  std::string what = "merge";
  for (int i = 0; i < req->containers_size() && i < 8; ++i) what += " " + req->containers(i).substr(0, 64);
  if (auto who = forwarded(ctx, req->node(), what); !who.ok()) return toGrpc(who.status());
  return ops_.Merge(ctx, req, writer);
}

grpc::Status PeerService::Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* rep) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  // A request that waited past its deadline (agent stopped, overloaded)
  // must not reserve anything: its source has already given up.
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "prepare arrived after its deadline");
  auto about = aboutMigration(req->migration_id(), req->spec().name());
  Status st = target_.prepare(*peer, *req, rep);
  if (st.ok()) rep->set_data_port(node_.dataPort());
  return toGrpc(st);
}

grpc::Status PeerService::Transfer(grpc::ServerContext* ctx, grpc::ServerReader<v1::TransferChunk>* reader,
                                   v1::TransferReply* rep) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto r = target_.receive(
      *peer, [reader](v1::TransferChunk& c) -> Result<bool> { return reader->Read(&c); }, true);
  if (!r.ok()) return toGrpc(r.status());
  *rep = *r;
  return grpc::Status::OK;
}

grpc::Status PeerService::Prelayout(grpc::ServerContext* ctx, const v1::PrelayoutRequest* req, v1::Ack*) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto about = aboutMigration(req->migration_id());
  return toGrpc(target_.prelayout(*peer, *req));
}

grpc::Status PeerService::Reserve(grpc::ServerContext* ctx, const v1::ReserveRequest* req, v1::Ack*) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto about = aboutMigration(req->migration_id());
  return toGrpc(target_.reserve(*peer, *req));
}

grpc::Status PeerService::Restore(grpc::ServerContext* ctx, const v1::RestoreRequest* req, v1::RestoreReply* rep) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto about = aboutMigration(req->migration_id());
  auto r = target_.restore(*peer, req->migration_id(), req->lazy(), req->net(), req->deadline_ms(),
                           {.netns = req->netns_prepared(),
                            .devShm = req->dev_shm_prepared(),
                            .dev = req->dev_prepared(),
                            .durableAtCommit = req->durable_at_commit()});
  if (!r.ok()) return toGrpc(r.status());
  *rep = *r;
  return grpc::Status::OK;
}

grpc::Status PeerService::Commit(grpc::ServerContext* ctx, const v1::MigrationRef* req, v1::Ack*) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto about = aboutMigration(req->migration_id());
  return toGrpc(target_.commit(*peer, req->migration_id()));
}

grpc::Status PeerService::Abort(grpc::ServerContext* ctx, const v1::AbortRequest* req, v1::Ack*) {
  auto peer = caller(ctx);
  if (!peer.ok()) return toGrpc(peer.status());
  auto about = aboutMigration(req->migration_id());
  return toGrpc(target_.abort(*peer, req->migration_id(), req->reason(), req->unless_restored()));
}

}  // namespace lxmig::agent
