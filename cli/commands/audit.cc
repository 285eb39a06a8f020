// `lxmig audit list|show|query|views`: the history kept by each node's
// agent. A migration is recorded by its source and, as "incoming", by its
// target: the list shows each once, and show prefers the source's full
// record. `query` runs read-only SQL over the audit views on one node or
// all (docs/audit.md).
#include <algorithm>
#include <iostream>
#include <thread>

#include "args.h"
#include "commands/command.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/vocabulary.h"
#include "manual.h"
#include "output/json.h"
#include "output/report.h"
#include "output/rows.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

struct QueryOptions {
  std::string sql, merge;
  bool all = false, csv = false;
  int64_t timeoutMs = store::QueryLimits{}.timeoutMs;
  uint64_t limit = store::QueryLimits{}.maxRows;
};

struct AuditOptions {
  CLI::App* show = nullptr;
  CLI::App* query = nullptr;
  CLI::App* stats = nullptr;
  CLI::App* exporter = nullptr;
  std::string since = "7d";
  std::string format = "jsonl";
  CLI::App* views = nullptr;
  QueryOptions q;
  std::string container;
  int limit = 50;
  std::string id;
};

int show(const Globals& g, Connector& conn, const std::vector<std::string>& names, const std::string& id) {
  for (const auto& n : names) {
    auto t = conn.forNode(n);
    if (!t.ok()) return fail("audit show", t.status());
    v1::GetMigrationRequest rq;
    rq.set_node(n);
    rq.set_id(id);
    auto r = call(*t, &v1::Agent::Stub::GetMigration, rq, 10);
    if (r.status().code() == Code::kNotFound) continue;
    if (!r.ok()) return fail("audit show " + id, r.status());
    // Prefer the source's record, which has every phase.
    if (r->mode() == v1::MODE_INCOMING && names.size() > 1 && n != names.back()) continue;
    printReport(*r, g.json);
    return 0;
  }
  return fail("audit show", notFound("no migration `" + id + "` on any node"));
}

int list(const Globals& g, Connector& conn, const std::vector<std::string>& names, const AuditOptions& o) {
  std::vector<v1::MigrationReport> all;
  for (const auto& n : names) {
    v1::ListMigrationsRequest rq;
    rq.set_node(n);
    rq.set_container(o.container);
    rq.set_limit(o.limit);
    auto rp = call(conn, n, &v1::Agent::Stub::ListMigrations, rq, 10);
    if (!rp.ok()) return fail("audit list", rp.status());
    for (const auto& m : rp->migrations())
      if (m.mode() != v1::MODE_INCOMING) all.push_back(m);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.started_ms() > b.started_ms(); });
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& m : all) arr.push_back(reportJson(m));
    printJson({{"migrations", arr}}, 2);
    return 0;
  }
  Table table("%-16s %-16s %-6s %-6s %-10s %10s %10s %10s\n");
  std::cout << table.row({"ID", "CONTAINER", "FROM", "TO", "RESULT", "DOWNTIME", "TOTAL", "BYTES"});
  for (const auto& m : all)
    std::cout << table.row({m.id(), m.container(), m.source(), m.target(), std::string(name(m.result())),
                            formatMs(m.downtime_ms()), formatMs(m.total_ms()), humanBytes(m.bytes())});
  return 0;
}

// The node a rows' tag names: `node` itself, or for "" (no cluster file:
// the local agent) the name that agent gives itself.
std::string nodeName(Connector& conn, const std::string& node) {
  if (!node.empty()) return node;
  auto info = call(conn, node, &v1::Agent::Stub::GetNode, v1::GetNodeRequest{}, 10);
  return info.ok() ? info->name() : "local";
}

// The same audit query on every node at once (a thread each: the
// connector is safe to share), the answers in the order of `names`.
std::vector<Result<v1::AuditQueryReply>> askAll(Connector& conn, const std::vector<std::string>& names,
                                                const v1::AuditQueryRequest& base, int seconds) {
  std::vector<Result<v1::AuditQueryReply>> out(names.size(), Result<v1::AuditQueryReply>(unavailable("not asked")));
  std::vector<std::thread> asks;
  for (size_t i = 0; i < names.size(); ++i)
    asks.emplace_back([&, i] {
      v1::AuditQueryRequest rq = base;
      rq.set_node(names[i]);
      out[i] = call(conn, names[i], &v1::Agent::Stub::AuditQuery, rq, seconds);
    });
  for (auto& t : asks) t.join();
  return out;
}

// The statement on each node asked (all at once); the rows tagged with the node that
// answered, merged (mergeRows), printed. A node that fails is named on
// stderr and makes the exit status 1; the others' rows are still printed.
int query(const Globals& g, Connector& conn, const QueryOptions& q) {
  if (q.all && !g.node.empty()) return fail("audit query", invalidArgument("--node and --all exclude each other"));
  std::vector<std::string> names = q.all ? conn.nodes() : std::vector<std::string>{g.node};
  if (names.empty()) names.push_back("");
  store::QueryLimits limits;
  limits.timeoutMs = q.timeoutMs;
  limits.maxRows = q.limit;
  if (Status st = limits.check(); !st.ok()) return fail("audit query", st);
  std::vector<std::pair<std::string, store::Rows>> per;
  nlohmann::json failed = nlohmann::json::array();
  v1::AuditQueryRequest base;
  base.set_sql(q.sql);
  base.set_timeout_ms(limits.timeoutMs);
  base.set_max_rows(limits.maxRows);
  auto answers = askAll(conn, names, base, static_cast<int>(limits.timeoutMs / 1000) + 15);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    auto& rp = answers[i];
    if (!rp.ok()) {
      if (names.size() == 1) return fail("audit query", rp.status());
      warn("audit query on " + n, rp.status().message());
      failed.push_back({{"node", n}, {"error", rp.status().message()}});
      continue;
    }
    per.emplace_back(nodeName(conn, n), rowsFromReply(*rp));
  }
  if (per.empty()) return 1;  // each node's failure is on stderr
  auto rows = store::mergeRows(per, q.merge, limits);
  if (!rows.ok()) return fail("audit query --merge", rows.status());
  if (rows->truncated && !g.quiet)
    warn("audit query", "more rows than the limit (--limit " + std::to_string(limits.maxRows) +
                            ", or 8 MiB of text per node): the first ones are shown");
  if (g.json) {
    auto j = rowsJson(*rows);
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& [n, r] : per)
      nodes.push_back({{"node", n}, {"rows", r.rows.size()}, {"elapsed_ms", r.elapsedMs}, {"truncated", r.truncated}});
    j["nodes"] = nodes;
    j["failed"] = failed;
    printJson(j, 2);
  } else if (q.csv) {
    printRowsCsv(std::cout, *rows);
  } else {
    printRowsTable(std::cout, *rows);
  }
  return failed.empty() ? 0 : 1;
}

// `audit stats`: each node's own migrations (as source) since a point, then
// figures over all of them: downtime percentiles per node and mode,
// outcomes and bytes per node, the top causes of failure, moves per reason.
int stats(const Globals& g, Connector& conn, const std::string& since) {
  auto back = parseSinceMs(since);
  if (!back.ok()) return fail("audit stats", back.status());
  const std::vector<std::string> names = nodesToAsk(g, conn);
  store::QueryLimits limits;
  limits.maxRows = store::QueryLimits::kMaxRows;
  limits.timeoutMs = 10000;
  std::vector<std::pair<std::string, store::Rows>> per;
  int failed = 0;
  v1::AuditQueryRequest base;
  base.set_sql(
      "SELECT mode, result, error, downtime_ms, bytes, reason FROM migrations "
      "WHERE role = 'source' AND started_ms >= now_ms() - " +
      std::to_string(*back));
  base.set_timeout_ms(limits.timeoutMs);
  base.set_max_rows(limits.maxRows);
  auto answers = askAll(conn, names, base, 30);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    auto& rp = answers[i];
    if (!rp.ok()) {
      warn("audit stats on " + (n.empty() ? std::string("the local node") : n), rp.status().message());
      ++failed;
      continue;
    }
    per.emplace_back(nodeName(conn, n), rowsFromReply(*rp));
  }
  if (per.empty()) return 1;
  const std::pair<const char*, const char*> sections[] = {
      {"downtime",
       "SELECT node, mode, count(*) AS moves, percentile(downtime_ms, 50) AS p50_ms, "
       "percentile(downtime_ms, 95) AS p95_ms, percentile(downtime_ms, 99) AS p99_ms, max(downtime_ms) AS max_ms "
       "FROM rows WHERE result = 'committed' GROUP BY node, mode ORDER BY node, mode"},
      {"outcomes",
       "SELECT node, sum(result = 'committed') AS committed, "
       "sum(result IN ('failed', 'aborted', 'refused', 'interrupted')) AS failed, "
       "sum(result = 'running') AS running, sum(bytes) AS bytes FROM rows GROUP BY node ORDER BY node"},
      {"causes",
       "SELECT substr(error, 1, 100) AS cause, count(*) AS times FROM rows WHERE error != '' "
       "GROUP BY cause ORDER BY times DESC, cause LIMIT 10"},
      {"reasons", "SELECT reason, count(*) AS moves FROM rows GROUP BY reason ORDER BY moves DESC, reason"},
  };
  nlohmann::json j = {{"since", since}};
  for (const auto& [title, sql] : sections) {
    auto r = store::mergeRows(per, sql, limits);
    if (!r.ok()) return fail(std::string("audit stats (") + title + ")", r.status());
    if (g.json) {
      j[title] = rowsJson(*r);
      continue;
    }
    std::cout << (std::string(title) == "downtime" ? "" : "\n") << title << " (since " << since << " ago):\n";
    printRowsTable(std::cout, *r);
  }
  if (g.json) printJson(j, 2);
  return failed ? 1 : 0;
}

// `audit export`: every row of the views since a point, one JSON object per
// line ({"type": "migration", "node": "n1", column: value, ...}), for log
// stores (Loki, Elasticsearch). Pages of 10,000 rows per request.
int exportAudit(const Globals& g, Connector& conn, const std::string& since, const std::string& format) {
  if (format != "jsonl") return fail("audit export", invalidArgument("format " + quote(format) + ": only jsonl"));
  auto back = parseSinceMs(since);
  if (!back.ok()) return fail("audit export", back.status());
  const std::vector<std::string> names = nodesToAsk(g, conn);
  struct Kind {
    const char *type, *view, *time;
  };
  const Kind kinds[] = {{"migration", "migrations", "started_ms"},
                        {"phase", "phases", "started_ms"},
                        {"round", "rounds", "started_ms"},
                        {"event", "events", "at_ms"},
                        {"decision", "decisions", "at_ms"}};
  constexpr uint64_t kPage = 10000;
  int failed = 0;
  for (const auto& n : names) {
    const std::string name = nodeName(conn, n);
    Status st;
    for (const auto& k : kinds) {
      for (uint64_t offset = 0; st.ok(); offset += kPage) {
        v1::AuditQueryRequest rq;
        rq.set_node(n);
        rq.set_sql(std::string("SELECT * FROM ") + k.view + " WHERE " + k.time + " >= now_ms() - " +
                   std::to_string(*back) + " ORDER BY " + k.time + " LIMIT " + std::to_string(kPage) + " OFFSET " +
                   std::to_string(offset));
        rq.set_max_rows(kPage);
        rq.set_timeout_ms(10000);
        auto rp = call(conn, n, &v1::Agent::Stub::AuditQuery, rq, 30);
        if (!rp.ok()) {
          st = rp.status();
          break;
        }
        const store::Rows rows = rowsFromReply(*rp);
        const nlohmann::json table = rowsJson(rows);
        for (const auto& row : table["rows"]) {
          nlohmann::json line = {{"type", k.type}, {"node", name}};
          for (size_t i = 0; i < rows.columns.size() && i < row.size(); ++i) line[rows.columns[i]] = row[i];
          printJson(line);
        }
        if (rows.rows.size() < kPage) break;
      }
    }
    if (!st.ok()) {
      warn("audit export on " + name, st.message());
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

int audit(const Globals& g, Connector& conn, const AuditOptions& o) {
  if (o.exporter->parsed()) return exportAudit(g, conn, o.since, o.format);
  if (o.stats->parsed()) return stats(g, conn, o.since);
  if (o.views->parsed()) {
    std::cout << store::auditViews();
    return 0;
  }
  if (o.query->parsed()) return query(g, conn, o.q);
  const std::vector<std::string> names = nodesToAsk(g, conn);
  return o.show->parsed() ? show(g, conn, names, o.id) : list(g, conn, names, o);
}

}  // namespace

Verb addAudit(CLI::App& app) {
  auto* cmd = app.add_subcommand("audit", "migration history");
  withExamples(
      cmd,
      {"lxmig audit list", "lxmig audit show 3f2a9c0d1e4b5a6f",
       "lxmig audit query --all \"SELECT container, downtime_ms FROM migrations ORDER BY downtime_ms DESC LIMIT 5\"",
       "lxmig audit stats --since 7d", "lxmig audit export --since 1d > audit.jsonl"});
  cmd->require_subcommand(1);
  auto o = std::make_shared<AuditOptions>();
  auto* list = cmd->add_subcommand("list", "recent migrations");
  list->add_option("--container", o->container, "only the migrations of this container");
  list->add_option("--limit", o->limit, "at most this many from each node");
  o->show = cmd->add_subcommand("show", "one migration with its phases");
  o->show->add_option("id", o->id, "migration id, as `audit list` shows it")->required();
  o->query = cmd->add_subcommand("query", "read-only SQL over the audit views (docs/audit.md)");
  o->query->add_option("sql", o->q.sql, "one SELECT statement over migrations, phases, rounds, events, decisions")
      ->required();
  o->query->add_flag("--all", o->q.all, "on every node of the cluster, rows tagged with their node");
  o->query->add_option("--merge", o->q.merge,
                       "a second statement over all nodes' rows (table `rows`: node, then the query's columns)");
  o->query->add_flag("--csv", o->q.csv, "CSV (RFC 4180) instead of a table");
  o->query->add_option("--limit", o->q.limit, "at most this many rows per node and merged (1..1000000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  o->query->add_option("--timeout", o->q.timeoutMs, "stop a query running longer, in ms (1..60000)")
      ->check(CLI::Range(int64_t{1}, int64_t{60000}));
  o->stats = cmd->add_subcommand("stats", "downtime percentiles, outcomes, causes and reasons, per node");
  o->stats->add_option("--since", o->since, "how far back: 90m, 24h, 7d (default), 2w");
  o->exporter = cmd->add_subcommand("export", "every audit row since a point, one JSON object per line");
  o->exporter->add_option("--since", o->since, "how far back: 90m, 24h, 7d (default), 2w");
  o->exporter->add_option("--format", o->format, "jsonl (one JSON object per line)");
  o->views = cmd->add_subcommand("views", "the audit views' SQL, for `sqlite3 -readonly <state_dir>/audit.db`");
  return {cmd, [o](const Globals& g, Connector& conn) { return audit(g, conn, *o); }};
}

}  // namespace lxmig::cli
