// `lxmig migrate NAME --to NODE`: live-migrates a container, showing the
// progress on a terminal and the report at the end. Ctrl-C cancels the
// stream; the source agent rolls back and the CLI waits for its verdict.
// `lxmig cancel ID` does the same from another terminal.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include "args.h"
#include "commands/command.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/vocabulary.h"
#include "manual.h"
#include "output/json.h"
#include "output/progress.h"
#include "output/report.h"

namespace lxmig::cli {
namespace {

struct MigrateOptions {
  std::string name, group, to, mode, tracker, maxDowntime, restoreTimeout;
  int maxRounds = 0;
  bool noConntrack = false;
  bool detach = false;
};

grpc::ClientContext* g_migrateCtx = nullptr;
void onInterrupt(int) {
  if (g_migrateCtx) g_migrateCtx->TryCancel();
}

// Asks `node` for migration `id` every `everyMs` until it ends, showing
// each answer to `seen` (may be empty); Unavailable after `limitS`.
Result<v1::MigrationReport> untilEnded(Target& t, const std::string& node, const std::string& id, int64_t limitS,
                                       int everyMs, const std::function<void(const v1::MigrationReport&)>& seen) {
  const int64_t until = monotonicNs() + limitS * int64_t{1000000000};
  v1::GetMigrationRequest rq;
  rq.set_node(node);
  rq.set_id(id);
  for (;;) {
    LXMIG_ASSIGN_OR_RETURN(auto r, call(t, &v1::Agent::Stub::GetMigration, rq, 10));
    if (seen) seen(r);
    if (r.result() != v1::RESULT_RUNNING) return r;
    if (monotonicNs() > until) return unavailable("still running after " + std::to_string(limitS) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(everyMs));
  }
}

// The final record of a migration whose stream the client cancelled: the
// source finishes the rollback (thaw, target abort) after the stream ends.
Result<v1::MigrationReport> awaitOutcome(Target& t, const std::string& node, const std::string& id) {
  return untilEnded(t, node, id, 120, 50, {});
}

// The request, or InvalidArgument for an option value CLI11 cannot check.
Result<v1::MigrateRequest> request(const MigrateOptions& o, const std::string& src, int64_t maxDowntimeMs) {
  int64_t restoreTimeoutMs = 0;
  if (!o.restoreTimeout.empty()) {
    LXMIG_ASSIGN_OR_RETURN(restoreTimeoutMs, parseDurationMs(o.restoreTimeout));
    if (restoreTimeoutMs < 1000 || restoreTimeoutMs > kMaxRestoreTimeoutMs)
      return invalidArgument("--restore-timeout must be between 1s and 14400s (4 hours)");
  }
  v1::MigrateRequest rq;
  rq.set_node(src);
  rq.set_container(o.name);
  rq.set_target(o.to);
  v1::MigrationMode mode = v1::MODE_AUTO;
  v1::Tracker tracker = v1::TRACKER_AUTO;
  if (!o.mode.empty() && !parse(o.mode, &mode)) return invalidArgument("unknown --mode `" + o.mode + "`");
  if (!o.tracker.empty() && !parse(o.tracker, &tracker))
    return invalidArgument("unknown --tracker `" + o.tracker + "`");
  rq.set_mode(mode);
  rq.set_tracker(tracker);
  rq.set_max_downtime_ms(maxDowntimeMs);
  rq.set_max_rounds(o.maxRounds);
  rq.set_no_conntrack(o.noConntrack);
  rq.set_restore_timeout_ms(restoreTimeoutMs);
  rq.set_reason("operator");
  rq.set_detach(o.detach);
  return rq;
}

// The container that holds IPC group `id` (lxmig groups): asked of every
// node; a group that is not inside one container says what would make it.
Result<std::string> containerOfGroup(const Globals& g, Connector& conn, const std::string& id) {
  const std::vector<std::string> names = nodesToAsk(g, conn);
  for (const auto& n : names) {
    v1::GroupsRequest rq;
    rq.set_node(n);
    rq.set_all(true);
    auto rp = call(conn, n, &v1::Agent::Stub::Groups, rq, 60);
    if (!rp.ok()) continue;
    const auto scan = nlohmann::json::parse(rp->scan_json(), nullptr, false);
    if (scan.is_discarded() || !scan.contains("groups")) continue;
    for (const auto& grp : scan["groups"]) {
      if (grp.value("id", "") != id) continue;
      const std::string verdict = grp.value("verdict", "");
      if (verdict == "single-container") return grp["containers"][0].get<std::string>();
      return failedPrecondition("group " + id + " on " + scan.value("node", n) + " is " + verdict +
                                (grp.value("why", "").empty() ? "" : " (" + grp.value("why", "") + ")") +
                                "; to move it as one: " + grp.value("action", ""));
    }
  }
  return notFound("no group `" + id + "` on any node (see `lxmig groups --all`)");
}

int migrate(const Globals& g, Connector& conn, MigrateOptions o) {
  if (!o.group.empty()) {
    auto c = containerOfGroup(g, conn, o.group);
    if (!c.ok()) return fail("migrate --group " + o.group, c.status());
    o.name = *c;
  }
  if (o.name.empty()) return fail("migrate", invalidArgument("name a container or --group"));
  const std::string what = "migrate " + o.name;
  int64_t maxDowntimeMs = 0;
  if (!o.maxDowntime.empty()) {
    auto d = parseDurationMs(o.maxDowntime);
    if (!d.ok()) return fail(what, d.status());
    if (*d == 0) return fail(what, invalidArgument("--max-downtime must be above 0"));
    maxDowntimeMs = *d;
  }
  if (o.maxRounds < 0) return fail(what, invalidArgument("--max-rounds must be 1 or more"));
  // Malformed names are usage errors, before any agent is asked.
  if (Status st = checkContainerName(o.name); !st.ok()) return fail("migrate", st);
  if (Status st = checkNodeName(o.to); !st.ok()) return fail(what, st);
  auto rq = request(o, "", maxDowntimeMs);
  if (!rq.ok()) return fail(what, rq.status());
  auto src = conn.nodeOf(o.name, g.node);
  if (!src.ok()) return fail(what, src.status());
  auto t = conn.forNode(*src);
  if (!t.ok()) return fail(what, t.status());
  rq->set_node(*src);

  if (o.detach) {
    grpc::ClientContext dctx;
    dctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = t->stub->Migrate(&dctx, *rq);
    v1::MigrateEvent ev;
    std::string id;
    while (reader->Read(&ev))
      if (ev.has_progress() && !ev.progress().migration_id().empty()) id = ev.progress().migration_id();
    if (Status st = fromGrpc(reader->Finish()); !st.ok()) return fail(what, st);
    if (checkMigrationId(id).ok() == false) return fail(what, internalError("the agent answered without an id"));
    if (g.json) printJson({{"id", id}, {"container", o.name}, {"source", *src}, {"target", o.to}});
    else std::printf("%s\n", id.c_str());
    if (!g.json && !g.quiet)
      std::fprintf(stderr, "migration %s of %s to %s runs on: lxmig watch %s | lxmig cancel %s\n", id.c_str(),
                   o.name.c_str(), o.to.c_str(), id.c_str(), id.c_str());
    return 0;
  }
  grpc::ClientContext ctx;
  g_migrateCtx = &ctx;
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  bool tty = ::isatty(2) && !g.quiet && !g.json;
  auto reader = t->stub->Migrate(&ctx, *rq);
  v1::MigrateEvent ev;
  v1::MigrationReport report;
  bool haveReport = false;
  std::string migrationId;
  while (reader->Read(&ev)) {
    if (ev.has_progress() && !ev.progress().migration_id().empty()) migrationId = ev.progress().migration_id();
    if (ev.has_report()) {
      report = ev.report();
      haveReport = true;
    } else if (tty && ev.progress().phase() != v1::PHASE_START) {
      std::fprintf(stderr, "\r\033[K%s", progressLine(ev.progress()).c_str());
    }
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  grpc::Status st = reader->Finish();
  g_migrateCtx = nullptr;
  if (!haveReport && st.error_code() == grpc::StatusCode::CANCELLED) {
    // Interrupted: the source rolls back on its own. Wait for its verdict
    // so the operator learns where the container runs, not just "maybe".
    if (migrationId.empty()) return fail(what, cancelled("interrupted before the source agent answered"));
    auto r = awaitOutcome(*t, *src, migrationId);
    if (!r.ok())
      return fail(what, cancelled("interrupted; the source agent rolls migration " + migrationId + " back (" +
                                  r.status().message() + "; see `lxmig audit show " + migrationId + "`)"));
    report = *r;
    haveReport = true;
  }
  if (!haveReport) return fail(what, fromGrpc(st));
  if (g.json || !g.quiet || report.result() != v1::RESULT_COMMITTED) printReport(report, g.json);
  if (report.result() != v1::RESULT_COMMITTED) {
    return failWith(what, std::string(name(report.result())) + ": " + report.error());
  }
  return 0;
}

// The source of migration `id` (asked of every node unless --node) rolls
// it back; prints the outcome, as `migrate` does.
int cancelMigration(const Globals& g, Connector& conn, const std::string& id, bool force) {
  const std::string what = "cancel " + id.substr(0, 64);
  if (Status st = checkMigrationId(id); !st.ok()) return fail(what, st);
  const std::vector<std::string> names = nodesToAsk(g, conn);
  std::string silent;
  for (const auto& n : names) {
    v1::CancelMigrationRequest rq;
    rq.set_node(n);
    rq.set_id(id);
    rq.set_force(force);
    auto rp = call(conn, n, &v1::Agent::Stub::CancelMigration, rq, 30);
    if (!rp.ok() && rp.status().code() == Code::kNotFound) continue;
    if (!rp.ok() && rp.status().code() == Code::kUnavailable) {
      silent += (silent.empty() ? "" : ", ") + (n.empty() ? std::string("the local agent") : n);
      continue;
    }
    if (!rp.ok()) return fail(what, rp.status());
    if (rp->thawed()) {
      warn(what, "`" + rp->container() + "` thawed without " + rp->target() + "'s word: if " + rp->target() +
                     " had restored it, two copies run now (lxmig ps shows both once " + rp->target() +
                     " answers; remove one)");
      if (g.json) printJson({{"id", id}, {"container", rp->container()}, {"thawed", true}});
      return 0;
    }
    auto t = conn.forNode(n);
    if (!t.ok()) return fail(what, t.status());
    auto r = awaitOutcome(*t, n, id);
    if (!r.ok()) return fail(what, r.status());
    if (g.json || !g.quiet) printReport(*r, g.json);
    if (r->result() == v1::RESULT_COMMITTED) {
      return failWith(what, "too late: `" + r->container() + "` was committed on " + r->target());
    }
    return 0;
  }
  return fail(what,
              notFound("no node runs migration " + id + (silent.empty() ? "" : " (no answer from " + silent + ")")));
}

// lxmig watch ID: the phases of a running migration as its source's audit
// records them, until it ends; then the report, and the exit code of
// `migrate` (0 committed, 1 otherwise).
int watchMigration(const Globals& g, Connector& conn, const std::string& id) {
  const std::string what = "watch " + id.substr(0, 64);
  if (Status st = checkMigrationId(id); !st.ok()) return fail(what, st);
  // The node whose audit has it; then its source's (the target's row
  // lacks the source's phases).
  const std::vector<std::string> names = nodesToAsk(g, conn);
  std::string at;
  bool found = false;
  v1::MigrationReport r;
  for (const auto& n : names) {
    v1::GetMigrationRequest rq;
    rq.set_node(n);
    rq.set_id(id);
    auto rp = call(conn, n, &v1::Agent::Stub::GetMigration, rq, 10);
    if (!rp.ok()) continue;
    r = *rp;
    at = r.source().empty() ? n : r.source();
    found = true;
    break;
  }
  if (!found) return fail(what, notFound("no node knows migration " + id + " (lxmig audit list --all)"));
  auto t = conn.forNode(at);
  if (!t.ok()) return fail(what, t.status());
  const bool lines = !g.json && !g.quiet;
  if (lines)
    std::printf("migration %s of %s: %s -> %s\n", id.c_str(), r.container().c_str(), r.source().c_str(),
                r.target().c_str());
  size_t shown = 0;  // phases printed (ended ones)
  auto ended = untilEnded(*t, at, id, int64_t{24} * 3600, 200, [&](const v1::MigrationReport& now) {
    for (; shown < static_cast<size_t>(now.phases_size()); ++shown) {
      const auto& p = now.phases(static_cast<int>(shown));
      const bool over = p.result() != v1::PHASE_RESULT_UNSPECIFIED && p.result() != v1::PHASE_RESULT_RUNNING;
      if (!over && now.result() == v1::RESULT_RUNNING) break;  // shown when it ends
      if (lines)
        std::printf("  %-20s %8lld ms  %s%s\n", std::string(name(p.phase())).c_str(),
                    static_cast<long long>(p.duration_ms()), std::string(name(p.result())).c_str(),
                    p.error().empty() ? "" : (": " + p.error()).c_str());
    }
    std::fflush(stdout);
  });
  if (!ended.ok()) return fail(what, ended.status());
  r = *ended;
  if (g.json || !g.quiet) printReport(r, g.json);
  if (r.result() != v1::RESULT_COMMITTED) return failWith(what, std::string(name(r.result())) + ": " + r.error());
  return 0;
}

}  // namespace

Verb addWatch(CLI::App& app) {
  auto* cmd = app.add_subcommand("watch", "follow a running migration from any terminal until it ends");
  withExamples(cmd, {"id=$(lxmig migrate db --to n2 --detach) && lxmig watch $id", "lxmig watch 3f2a9c0d1e4b5a6f"});
  auto id = std::make_shared<std::string>();
  cmd->add_option("id", *id, "migration id (lxmig migrate --detach, lxmig audit list)")->required();
  return {cmd, [id](const Globals& g, Connector& conn) { return watchMigration(g, conn, *id); }};
}

Verb addCancel(CLI::App& app) {
  auto* cmd = app.add_subcommand("cancel", "stop a running migration: the container goes on running on its source");
  withExamples(
      cmd, {"lxmig cancel 3f2a9c0d1e4b5a6f", "lxmig cancel --force 3f2a9c0d1e4b5a6f   # thaw a source left frozen"});
  struct CancelOptions {
    std::string id;
    bool force = false;
  };
  auto o = std::make_shared<CancelOptions>();
  cmd->add_option("id", o->id, "migration id (lxmig audit, lxmig migrate's first line)")->required();
  cmd->add_flag("--force", o->force,
                "thaw a container its ended migration left FROZEN while the target is silent (two copies run if "
                "the target had restored it)");
  return {cmd, [o](const Globals& g, Connector& conn) { return cancelMigration(g, conn, o->id, o->force); }};
}

Verb addMigrate(CLI::App& app) {
  auto* cmd = app.add_subcommand("migrate", "live-migrate a container to another node");
  withExamples(cmd,
               {"lxmig migrate web --to n2", "lxmig migrate web --to n2 --mode stop-and-copy",
                "lxmig migrate --group g1092.2f5e1 --to n2", "lxmig --json migrate db --to n3 --max-downtime 150ms"});
  auto o = std::make_shared<MigrateOptions>();
  auto* name = cmd->add_option("name", o->name, "container name");
  auto* group = cmd->add_option("--group", o->group, "the container holding this IPC group (lxmig groups)");
  name->excludes(group);
  cmd->add_option("--to", o->to, "target node")->required();
  cmd->add_option("--mode", o->mode,
                  "auto (default: the mode whose frozen window the source node predicts shorter, from its own "
                  "past migrations), pre-copy or stop-and-copy")
      ->check(CLI::IsMember({"auto", "pre-copy", "stop-and-copy"}));
  cmd->add_option("--tracker", o->tracker, "dirty tracker: auto, uffd-wp, soft-dirty, none (= stop-and-copy)")
      ->check(CLI::IsMember({"auto", "uffd-wp", "soft-dirty", "none"}));
  cmd->add_option("--max-downtime", o->maxDowntime,
                  "pre-copy stops when the rest fits this (default " + std::to_string(kDefaultMaxDowntimeMs) + "ms)");
  cmd->add_option("--max-rounds", o->maxRounds,
                  "pre-copy round limit (default " + std::to_string(kDefaultMaxRounds) + ")");
  cmd->add_option("--restore-timeout", o->restoreTimeout,
                  "kill the target's restore after this long and roll back (default: 60s + 1s per 32 MiB sent)");
  cmd->add_flag("--detach", o->detach,
                "print the migration's id and return; the agent carries it to its end (lxmig watch ID, lxmig "
                "cancel ID)");
  cmd->add_flag("--no-conntrack", o->noConntrack,
                "leave the node's conntrack entries behind (diagnosis: established flows die behind a strict "
                "firewall)");
  return {cmd, [o](const Globals& g, Connector& conn) { return migrate(g, conn, *o); }};
}

}  // namespace lxmig::cli
