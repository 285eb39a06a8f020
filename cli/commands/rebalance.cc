// `lxmig rebalance`, `drain NODE`, `pin NAME`, `unpin NAME`: the scheduler's
// verbs. rebalance and drain gather every node's load (cluster_load.h), plan
// with sched/planner.h, print the plan, carry it out (pre-copy when it
// works; --concurrency moves at once, one after the other by default)
// unless --dry-run, and record every
// decision in the audit of the node that ran them (`decisions` view). Only
// one rebalance or drain acts at a time: in the cluster with a cluster
// store (etcd's lock `rebalance`), else on this host (flock on
// /run/lxmig/rebalance.lock); a second one says so and does nothing.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "args.h"
#include "cluster_load.h"
#include "commands/command.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/vocabulary.h"
#include "manual.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

struct RebalanceOptions {
  bool dryRun = false;
  int concurrency = 1;
  double thresholdPct = 20;
  int maxMoves = 10;
  std::string cooldown = "6h";
  std::string node;  // drain
};

std::string pctText(double f) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f%%", f * 100);
  return b;
}

// The lock that keeps two runs from acting at once. With a cluster store
// (etcd), the cluster-wide lock `rebalance`, held by the local agent for
// as long as this run keeps its call open (released when the run ends or
// dies); else a flock on this host's /run/lxmig/rebalance.lock.
struct RunLock {
  Target agent;  // outlives the call below
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<v1::HoldEvent>> call;
  UniqueFd file;
  RunLock() = default;
  RunLock(RunLock&&) = default;
  RunLock& operator=(RunLock&&) = default;
  ~RunLock() {
    if (!call) return;
    ctx->TryCancel();
    (void)call->Finish();
  }
};

Result<RunLock> takeLock(Connector& conn, const std::string& verb) {
  RunLock lock;
  if (conn.hasStore()) {
    LXMIG_ASSIGN_OR_RETURN(lock.agent, conn.forNode(""));
    char host[256] = "";
    (void)::gethostname(host, sizeof host - 1);
    std::string holder = std::string(host) + " " + verb + " pid " + std::to_string(::getpid());
    for (char& c : holder)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    v1::HoldRequest rq;
    rq.set_lock("rebalance");
    rq.set_holder(holder);
    lock.ctx = std::make_unique<grpc::ClientContext>();
    lock.call = lock.agent.stub->Hold(lock.ctx.get(), rq);
    v1::HoldEvent ev;
    if (!lock.call->Read(&ev) || !ev.held()) {
      Status st = fromGrpc(lock.call->Finish());
      lock.call.reset();
      if (st.code() == Code::kFailedPrecondition)
        return failedPrecondition("another rebalance or drain is running in the cluster: " + st.message() +
                                  "; not acting");
      return st.withContext("taking the cluster lock `rebalance`");
    }
    return lock;
  }
  const std::string dir = "/run/lxmig";
  LXMIG_RETURN_IF_ERROR(makeDirs(dir, 0755));
  const std::string path = dir + "/rebalance.lock";
  lock.file = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.file) return Status::fromErrno("open", path);
  if (::flock(lock.file.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return failedPrecondition("another rebalance or drain is running on this host (" + path + "); not acting");
    return Status::fromErrno("lock", path);
  }
  return lock;
}

// Carries out one move through its source agent; the migration's id, or
// why it failed.
Result<std::string> carryOut(Connector& conn, const sched::Move& m, const std::string& reason) {
  LXMIG_ASSIGN_OR_RETURN(Target t, conn.forNode(m.from));
  v1::MigrateRequest rq;
  rq.set_node(m.from);
  rq.set_container(m.container);
  rq.set_target(m.to);
  rq.set_mode(v1::MODE_AUTO);
  rq.set_tracker(v1::TRACKER_AUTO);
  rq.set_reason(reason);
  grpc::ClientContext ctx;
  auto reader = t.stub->Migrate(&ctx, rq);
  v1::MigrateEvent ev;
  v1::MigrationReport report;
  bool have = false;
  while (reader->Read(&ev))
    if (ev.has_report()) {
      report = ev.report();
      have = true;
    }
  grpc::Status st = reader->Finish();
  if (!have) return fromGrpc(st);
  if (report.result() != v1::RESULT_COMMITTED)
    return Status(Code::kAborted, report.id() + " " + std::string(name(report.result())) + ": " + report.error());
  return report.id();
}

v1::Decision decision(const std::string& container, const std::string& from, const std::string& to,
                      const std::string& action, const std::string& reason) {
  v1::Decision d;
  d.set_at_ms(wallMs());
  d.set_container(container);
  d.set_from_node(from);
  d.set_to_node(to);
  d.set_action(action);
  d.set_reason(reason);
  return d;
}

// The downtime to expect of a move from each node: the median of its
// committed migrations of the last 30 days (its own audit); for a node
// without any, the median of the other nodes' medians; absent when no node
// has history.
std::map<std::string, double> typicalDowntimeMs(Connector& conn, const std::vector<std::string>& nodes) {
  std::map<std::string, double> out;
  std::vector<double> all;
  for (const auto& n : nodes) {
    v1::AuditQueryRequest rq;
    rq.set_node(n);
    rq.set_sql(
        "SELECT percentile(downtime_ms, 50) FROM migrations WHERE role = 'source' AND result = 'committed' "
        "AND started_ms > now_ms() - 30 * 86400000");
    auto r = call(conn, n, &v1::Agent::Stub::AuditQuery, rq, 10);
    if (r.ok() && r->rows_size() == 1 && r->rows(0).cells_size() == 1 && r->rows(0).cells(0).has_real()) {
      out[n] = r->rows(0).cells(0).real();
      all.push_back(out[n]);
    }
  }
  if (all.empty()) return out;
  std::sort(all.begin(), all.end());
  const double cluster = all[all.size() / 2];
  for (const auto& n : nodes) out.emplace(n, cluster);
  return out;
}

// Prints the plan, carries it out unless dry, records the decisions.
int execute(const Globals& g, Connector& conn, const sched::Plan& plan, const ClusterLoad& cl,
            const std::string& reason, bool dryRun, int concurrency, const std::string& what) {
  std::map<std::string, uint64_t> mem;
  std::map<std::string, double> cpu;
  for (const auto& c : cl.containers) mem[c.name] = c.memBytes, cpu[c.name] = c.cpu;
  std::vector<std::string> results(plan.moves.size(), dryRun ? "planned" : "");
  std::vector<std::string> ids(plan.moves.size());
  std::vector<std::string> nodes;
  for (const auto& n : cl.nodes) nodes.push_back(n.name);
  const auto typical = plan.moves.empty() ? std::map<std::string, double>{} : typicalDowntimeMs(conn, nodes);
  auto predicted = [&](const sched::Move& m) -> nlohmann::json {
    auto it = typical.find(m.from);
    if (it == typical.end()) return nullptr;
    return static_cast<int64_t>(it->second);
  };
  int failed = 0;
  if (!g.json) {
    std::cout << what << ": spread " << pctText(plan.spreadBefore) << " -> " << pctText(plan.spreadAfter) << ", "
              << plan.moves.size() << " move(s), " << humanBytes(plan.bytes) << "; " << plan.verdict << "\n";
  }
  // At most `concurrency` moves at once, each container in one of them.
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  std::mutex out;
  auto worker = [&] {
    for (size_t k; !dryRun && (k = next++) < plan.moves.size();) {
      const auto& m = plan.moves[k];
      if (!g.json && !g.quiet) {
        std::lock_guard lk(out);
        std::cerr << "moving " << m.container << " " << m.from << " -> " << m.to << " ...\n";
      }
      auto id = carryOut(conn, m, reason);
      if (id.ok()) {
        ids[k] = *id;
        results[k] = "committed";
        continue;
      }
      ++failures;
      results[k] = "failed: " + id.status().message();
      std::lock_guard lk(out);
      warn(what, m.container + " " + m.from + " -> " + m.to + ": " + id.status().message());
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < std::max(1, concurrency); ++w) workers.emplace_back(worker);
  for (auto& t : workers) t.join();
  failed = failures;
  // The decisions, in the local node's audit.
  v1::RecordDecisionsRequest rec;
  for (size_t k = 0; k < plan.moves.size(); ++k) {
    const auto& m = plan.moves[k];
    char why[256];
    std::snprintf(why, sizeof why, "%s: %s %s -> %s, %s %s -> %s%s", reason.c_str(), m.from.c_str(),
                  pctText(m.fromBefore).c_str(), pctText(m.fromAfter).c_str(), m.to.c_str(),
                  pctText(m.toBefore).c_str(), pctText(m.toAfter).c_str(),
                  dryRun                      ? " (dry run)"
                  : results[k] == "committed" ? ""
                                              : (" (" + results[k] + ")").c_str());
    v1::Decision d = decision(m.container, m.from, m.to, "move", why);
    d.set_has_scores(true);
    d.set_score_before(m.fromBefore);
    d.set_score_after(m.fromAfter);
    d.set_migration_id(ids[k]);
    *rec.add_decisions() = d;
  }
  for (const auto& s : plan.skipped)
    *rec.add_decisions() = decision(s.container, s.node, "", "skip", reason + ": " + s.why);
  if (rec.decisions_size() == 0) *rec.add_decisions() = decision("", "", "", "stay", reason + ": " + plan.verdict);
  if (auto r = call(conn, "", &v1::Agent::Stub::RecordDecisions, rec, 30); !r.ok())
    warn(what, "decisions not recorded in the audit: " + r.status().message());

  if (g.json) {
    nlohmann::json moves = nlohmann::json::array();
    for (size_t k = 0; k < plan.moves.size(); ++k) {
      const auto& m = plan.moves[k];
      moves.push_back({{"container", m.container},
                       {"from", m.from},
                       {"to", m.to},
                       {"memory_bytes", m.memBytes},
                       {"cpu", cpu[m.container]},
                       {"from_score_before", m.fromBefore},
                       {"from_score_after", m.fromAfter},
                       {"to_score_before", m.toBefore},
                       {"to_score_after", m.toAfter},
                       {"predicted_downtime_ms", predicted(m)},
                       {"result", results[k]},
                       {"migration_id", ids[k]}});
    }
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto& s : plan.skipped)
      skipped.push_back({{"container", s.container}, {"node", s.node}, {"why", s.why}});
    printJson({{"spread_before", plan.spreadBefore},
               {"spread_after", plan.spreadAfter},
               {"bytes", plan.bytes},
               {"verdict", plan.verdict},
               {"dry_run", dryRun},
               {"moves", moves},
               {"skipped", skipped},
               {"unreachable", cl.unreachable}},
              2);
  } else if (!plan.moves.empty()) {
    Table table("%-16s %-6s %-6s %9s %5s %-13s %-13s %9s %s\n");
    std::cout << table.row(
        {"CONTAINER", "FROM", "TO", "MEMORY", "CPU", "FROM SCORE", "TO SCORE", "DOWNTIME~", "RESULT"});
    for (size_t k = 0; k < plan.moves.size(); ++k) {
      const auto& m = plan.moves[k];
      char c[16];
      std::snprintf(c, sizeof c, "%.2f", cpu[m.container]);
      const auto p = predicted(m);
      std::cout << table.row({m.container, m.from, m.to, humanBytes(m.memBytes), c,
                              pctText(m.fromBefore) + " -> " + pctText(m.fromAfter),
                              pctText(m.toBefore) + " -> " + pctText(m.toAfter),
                              p.is_null() ? "-" : std::to_string(p.get<int64_t>()) + " ms", results[k]});
    }
  }
  if (!g.json)
    for (const auto& s : plan.skipped)
      if (s.why == "pinned" || s.why.rfind("cannot move", 0) == 0 || s.why.rfind("moved ", 0) == 0)
        std::cout << "  stays: " << s.container << " on " << s.node << ": " << printable(s.why) << "\n";
  return failed ? 1 : 0;
}

Status paramsFrom(const RebalanceOptions& o, sched::Params* p) {
  if (!(o.thresholdPct > 0 && o.thresholdPct <= 100)) return invalidArgument("--threshold must be between 0 and 100");
  if (o.maxMoves < 0) return invalidArgument("--max-moves must be 0 (no limit) or more");
  if (o.concurrency < 1 || o.concurrency > 16) return invalidArgument("--concurrency must be 1 to 16");
  LXMIG_ASSIGN_OR_RETURN(int64_t cooldown, parseSinceMs(o.cooldown));
  p->startSpread = o.thresholdPct / 100;
  p->stopSpread = p->startSpread / 2;  // hysteresis: stop at half the threshold
  p->maxMoves = o.maxMoves;
  p->cooldownMs = cooldown;
  p->nowMs = wallMs();
  return okStatus();
}

// What rebalance and drain share: the options checked, the lock taken
// (unless a dry run), the cluster's load gathered; `planFor` makes the plan
// (or says why not) and execute() carries it out. `skipped` gets how many
// containers the plan leaves where they are.
int planAndRun(const Globals& g, Connector& conn, const RebalanceOptions& o, const std::string& verb,
               const std::string& what,
               const std::function<Result<sched::Plan>(const ClusterLoad&, const sched::Params&)>& planFor,
               size_t* skipped = nullptr) {
  sched::Params p;
  if (Status st = paramsFrom(o, &p); !st.ok()) return fail(verb, st);
  RunLock lock;
  if (!o.dryRun) {
    auto l = takeLock(conn, verb);
    if (!l.ok()) return fail(verb, l.status());
    lock = std::move(*l);
  }
  ClusterLoad cl = gatherLoad(conn);
  for (const auto& u : cl.unreachable) warn(verb, u + " (left out of the plan)");
  auto plan = planFor(cl, p);
  if (!plan.ok()) return fail(verb, plan.status());
  if (skipped) *skipped = plan->skipped.size();
  return execute(g, conn, *plan, cl, verb, o.dryRun, o.concurrency, what);
}

int rebalance(const Globals& g, Connector& conn, const RebalanceOptions& o) {
  return planAndRun(g, conn, o, "rebalance", "rebalance",
                    [](const ClusterLoad& cl, const sched::Params& p) -> Result<sched::Plan> {
                      if (cl.nodes.empty()) return unavailable("no node answered");
                      return sched::plan(cl.nodes, cl.containers, p);
                    });
}

int drainNode(const Globals& g, Connector& conn, const RebalanceOptions& o) {
  size_t staying = 0;
  int rc = planAndRun(
      g, conn, o, "drain", "drain " + o.node,
      [&](const ClusterLoad& cl, const sched::Params& p) -> Result<sched::Plan> {
        bool known = false;
        for (const auto& n : cl.nodes) known |= n.name == o.node;
        if (!known) return notFound("node `" + o.node + "` did not answer or is not in the cluster");
        return sched::drain(cl.nodes, cl.containers, o.node, p);
      },
      &staying);
  return rc != 0 ? rc : staying == 0 ? 0 : 1;
}

int pin(const Globals& g, Connector& conn, const std::string& name, const std::string& node, bool pinned) {
  const std::string what = (pinned ? "pin " : "unpin ") + name;
  v1::PinRequest rq;
  rq.set_node(node);
  rq.set_name(name);
  rq.set_pinned(pinned);
  auto r = call(conn, node, &v1::Agent::Stub::Pin, rq, 10);
  if (!r.ok()) return fail(what, r.status());
  if (g.json) printJson({{"name", name}, {"node", node}, {"pinned", pinned}, {"was_pinned", r->was_pinned()}});
  else if (!g.quiet) std::cout << name << (pinned ? " pinned" : " unpinned") << " on " << node << "\n";
  return 0;
}

int pinVerb(const Globals& g, Connector& conn, const std::string& name, const std::string& node) {
  return pin(g, conn, name, node, true);
}
int unpinVerb(const Globals& g, Connector& conn, const std::string& name, const std::string& node) {
  return pin(g, conn, name, node, false);
}

void addPlanOptions(CLI::App* cmd, RebalanceOptions& o) {
  cmd->add_flag("--dry-run", o.dryRun, "print the plan, move nothing");
  cmd->add_option("--threshold", o.thresholdPct,
                  "act when the spread of node scores exceeds this percentage (default 20); stop at half of it");
  cmd->add_option("--max-moves", o.maxMoves, "at most this many moves (default 10; 0: no limit)");
  cmd->add_option("--cooldown", o.cooldown, "leave containers moved within this (default 6h; 90m, 6h, 1d)");
  cmd->add_option("--concurrency", o.concurrency, "moves at once (default 1, at most 16)");
}

}  // namespace

Verb addRebalance(CLI::App& app) {
  auto* cmd = app.add_subcommand("rebalance", "plan and carry out moves that even out the nodes' load");
  withExamples(cmd, {"lxmig rebalance --dry-run", "lxmig rebalance --threshold 30 --max-moves 4"});
  auto o = std::make_shared<RebalanceOptions>();
  addPlanOptions(cmd, *o);
  return {cmd, [o](const Globals& g, Connector& conn) { return rebalance(g, conn, *o); }};
}

Verb addDrain(CLI::App& app) {
  auto* cmd = app.add_subcommand("drain", "move every container off a node (maintenance)");
  withExamples(cmd, {"lxmig drain n2 --dry-run", "lxmig drain n2"});
  auto o = std::make_shared<RebalanceOptions>();
  cmd->add_option("node", o->node, "the node to empty")->required();
  cmd->add_flag("--dry-run", o->dryRun, "print the plan, move nothing");
  cmd->add_option("--concurrency", o->concurrency, "moves at once (default 1, at most 16)");
  return {cmd, [o](const Globals& g, Connector& conn) { return drainNode(g, conn, *o); }};
}

Verb addPin(CLI::App& app) {
  Verb v = containerVerb(app, "pin", "keep a container where it is: rebalance never moves it", pinVerb);
  withExamples(v.command, {"lxmig pin db", "lxmig unpin db"});
  return v;
}
Verb addUnpin(CLI::App& app) {
  Verb v = containerVerb(app, "unpin", "let rebalance move a container again", unpinVerb);
  withExamples(v.command, {"lxmig unpin db"});
  return v;
}

}  // namespace lxmig::cli
