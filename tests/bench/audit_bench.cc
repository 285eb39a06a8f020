// Audit queries at scale (issue 18): a synthetic node database with
// --migrations finished migrations over a year (phases, pre-copy rounds,
// events, node events, decisions), every cookbook query of docs/audit.md
// timed on it (median of --runs, with the rows a user would get: the
// default 10,000-row cap), and a cluster-wide query over --nodes node
// databases of --node-migrations each, asked one after the other as the CLI
// does (a fresh read-only connection per node, as an agent opens per
// request) and merged in memory. Databases are kept in --dir and reused
// when their row count matches. Prints one JSON document.
//
//   audit_bench --dir /var/tmp/lxmig-audit-bench --cookbook docs/audit.md
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "audit_cookbook.h"
#include "lxmig/base/files.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/store/audit_query.h"

using namespace lxmig;

namespace {

constexpr int64_t kDayMs = 86400 * 1000;

int64_t nowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

double elapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

void must(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::cerr << "audit_bench: " << what << ": " << sqlite3_errmsg(db) << "\n";
    std::exit(1);
  }
}

struct Insert {
  sqlite3_stmt* st = nullptr;
  Insert(sqlite3* db, const char* sql) { must(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), db, sql); }
  ~Insert() { sqlite3_finalize(st); }
  void run(sqlite3* db) {
    must(sqlite3_step(st), db, "insert");
    sqlite3_reset(st);
  }
};

int64_t migrationsIn(const std::string& path) {
  if (!std::filesystem::exists(path)) return -1;
  auto q = store::AuditQuery::open(path);
  if (!q.ok()) return -1;
  auto r = (*q)->run("SELECT count(*) FROM main.migrations", {});
  return r.ok() ? r->rows[0][0].integer : -1;
}

// A year of one node's history, `n` migrations spread evenly up to now.
void generate(const std::string& path, int64_t n, const std::string& node, uint64_t seed) {
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  {
    auto log = store::AuditLog::open(path);  // the schema, as an agent makes it
    if (!log.ok()) {
      std::cerr << "audit_bench: " << log.status().toString() << "\n";
      std::exit(1);
    }
  }
  sqlite3* db = nullptr;
  must(sqlite3_open(path.c_str(), &db), db, "open");
  must(sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr), db, "begin");
  Insert mig(db,
             "INSERT INTO migrations(id, container, source, target, mode, reason, started_ms, ended_ms, result, "
             "error, bytes, downtime_ms, total_ms, tracker) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  Insert phase(db,
               "INSERT INTO phases(migration_id, name, started_ms, ended_ms, bytes, result, error, detail) "
               "VALUES(?,?,?,?,?,?,?,?)");
  Insert round(db,
               "INSERT INTO rounds(migration_id, round, started_ms, duration_ms, scan_us, processes, dirty_pages, "
               "pages_sent, bytes, dirty_rate_bps, send_rate_bps, predicted_downtime_ms, stop) "
               "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  Insert event(db, "INSERT INTO events(migration_id, at_ms, level, text) VALUES(?,?,?,?)");
  Insert nodeEvent(db, "INSERT INTO node_events(at_ms, level, kind, peer, text) VALUES(?,?,?,?,?)");
  Insert decision(db,
                  "INSERT INTO decisions(at_ms, container, from_node, to_node, action, reason, score_before, "
                  "score_after, migration_id) VALUES(?,?,?,?,?,?,?,?,?)");
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t k) { return rng() % k; };
  const char* errors[] = {"CRIU dump of `c` failed: Can't dump a ptraced process", "target refused: not enough memory",
                          "data link broke: connection reset by peer", "restore failed: Can't bind-mount at /usr",
                          "container did not freeze within 5000 ms"};
  const char* phases[] = {"prepare", "precopy", "freeze", "dump", "rewrite", "transfer", "restore", "commit"};
  const char* reasons[] = {"operator", "rebalance", "rebalance", "drain"};
  auto text = [](sqlite3_stmt* st, int i, const std::string& s) {
    sqlite3_bind_text(st, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  };
  const int64_t start = nowMs() - 365 * kDayMs;
  const int64_t step = std::max<int64_t>(1, 365 * kDayMs / std::max<int64_t>(n, 1));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = start + i * step;
    const std::string id = node + "-" + std::to_string(i);
    const bool incoming = pick(10) == 0;
    const bool precopy = !incoming && pick(10) < 7;
    const uint64_t fate = pick(100);
    const char* result = fate < 95 ? "committed" : fate < 98 ? "failed" : "aborted";
    const int64_t downtime = std::string(result) == "committed" ? 80 + static_cast<int64_t>(pick(900)) : -1;
    const int64_t total = 500 + static_cast<int64_t>(pick(20000));
    text(mig.st, 1, id);
    text(mig.st, 2, "c" + std::to_string(pick(5000)));
    text(mig.st, 3, incoming ? "n" + std::to_string(2 + pick(19)) : node);
    text(mig.st, 4, incoming ? node : "n" + std::to_string(2 + pick(19)));
    text(mig.st, 5, incoming ? "incoming" : precopy ? "pre-copy" : "stop-and-copy");
    text(mig.st, 6, incoming ? "incoming from n2" : reasons[pick(4)]);
    sqlite3_bind_int64(mig.st, 7, t);
    sqlite3_bind_int64(mig.st, 8, t + total);
    text(mig.st, 9, result);
    text(mig.st, 10, fate < 95 ? "" : errors[pick(5)]);
    sqlite3_bind_int64(mig.st, 11, static_cast<int64_t>(pick(4ull << 30)));
    sqlite3_bind_int64(mig.st, 12, downtime);
    sqlite3_bind_int64(mig.st, 13, total);
    text(mig.st, 14, precopy ? "uffd-wp" : "");
    mig.run(db);
    int64_t at = t;
    for (const char* ph : phases) {
      if (!precopy && (std::string(ph) == "precopy" || std::string(ph) == "rewrite")) continue;
      const int64_t d = 1 + static_cast<int64_t>(pick(std::string(ph) == "precopy" ? 10000 : 400));
      text(phase.st, 1, id);
      text(phase.st, 2, ph);
      sqlite3_bind_int64(phase.st, 3, at);
      sqlite3_bind_int64(phase.st, 4, at + d);
      sqlite3_bind_int64(phase.st, 5, static_cast<int64_t>(pick(1ull << 30)));
      text(phase.st, 6, "ok");
      text(phase.st, 7, "");
      text(phase.st, 8, "");
      phase.run(db);
      at += d;
    }
    if (precopy) {
      const int rounds = 2 + static_cast<int>(pick(3));
      for (int r = 0; r < rounds; ++r) {
        text(round.st, 1, id);
        sqlite3_bind_int(round.st, 2, r);
        sqlite3_bind_int64(round.st, 3, t + r * 1000);
        sqlite3_bind_int64(round.st, 4, 100 + static_cast<int64_t>(pick(5000)));
        sqlite3_bind_int64(round.st, 5, static_cast<int64_t>(pick(5000)));
        sqlite3_bind_int64(round.st, 6, 1 + static_cast<int64_t>(pick(20)));
        sqlite3_bind_int64(round.st, 7, static_cast<int64_t>(pick(300000)));
        sqlite3_bind_int64(round.st, 8, static_cast<int64_t>(pick(300000)));
        sqlite3_bind_int64(round.st, 9, static_cast<int64_t>(pick(1ull << 30)));
        sqlite3_bind_double(round.st, 10, static_cast<double>(pick(800)) * 1048576);
        sqlite3_bind_double(round.st, 11, static_cast<double>(200 + pick(1000)) * 1048576);
        sqlite3_bind_int64(round.st, 12, static_cast<int64_t>(pick(2000)));
        text(round.st, 13, r + 1 < rounds ? "" : pick(10) == 0 ? "round limit" : "converged");
        round.run(db);
      }
    }
    text(event.st, 1, id);
    sqlite3_bind_int64(event.st, 2, t + 10);
    const bool warn = pick(20) == 0;
    text(event.st, 3, warn ? "warn" : "info");
    text(event.st, 4, warn ? "container was no longer frozen before the dump; froze it again" : "round 0 sent");
    event.run(db);
    if (i % 1000 == 0) {
      sqlite3_bind_int64(nodeEvent.st, 1, t);
      text(nodeEvent.st, 2, "warn");
      text(nodeEvent.st, 3, "peer-refused");
      text(nodeEvent.st, 4, "stranger.example");
      text(nodeEvent.st, 5, "refused on the peer port: its certificate names no node of the cluster");
      nodeEvent.run(db);
    }
    if (i % 10 == 0) {
      sqlite3_bind_int64(decision.st, 1, t - 1000);
      text(decision.st, 2, "c" + std::to_string(pick(5000)));
      text(decision.st, 3, node);
      text(decision.st, 4, "n" + std::to_string(2 + pick(19)));
      text(decision.st, 5, pick(3) == 0 ? "move" : "stay");
      text(decision.st, 6, "memory above 80%");
      sqlite3_bind_double(decision.st, 7, 0.8 + static_cast<double>(pick(20)) / 100);
      sqlite3_bind_double(decision.st, 8, 0.5 + static_cast<double>(pick(20)) / 100);
      text(decision.st, 9, "");
      decision.run(db);
    }
  }
  must(sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE); ANALYZE", nullptr, nullptr, nullptr), db, "commit");
  sqlite3_close(db);
}

std::string flag(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = flag(argc, argv, "--dir", "/var/tmp/lxmig-audit-bench");
  const int64_t migrations = std::stoll(flag(argc, argv, "--migrations", "1000000"));
  const int nodes = std::stoi(flag(argc, argv, "--nodes", "20"));
  const int64_t perNode = std::stoll(flag(argc, argv, "--node-migrations", "50000"));
  const int runs = std::stoi(flag(argc, argv, "--runs", "3"));
  auto doc = readFile(flag(argc, argv, "--cookbook", "docs/audit.md"));
  if (!doc.ok()) {
    std::cerr << "audit_bench: " << doc.status().toString() << "\n";
    return 1;
  }
  std::filesystem::create_directories(dir);
  nlohmann::json out = {{"migrations", migrations}, {"nodes", nodes}, {"node_migrations", perNode}, {"runs", runs}};

  const std::string big = dir + "/node.db";
  if (migrationsIn(big) != migrations) {
    auto t = std::chrono::steady_clock::now();
    generate(big, migrations, "n1", 1);
    out["generate_s"] = elapsedMs(t) / 1000;
  }
  out["db_bytes"] = std::filesystem::file_size(big);
  nlohmann::json cook = nlohmann::json::array();
  auto q = store::AuditQuery::open(big);
  if (!q.ok()) return 1;
  for (const auto& [title, sql] : testing::cookbookQueries(*doc)) {
    std::vector<double> ms;
    size_t rows = 0;
    bool truncated = false;
    std::string error;
    for (int r = 0; r < runs; ++r) {
      store::QueryLimits l;
      l.timeoutMs = 60000;
      auto t = std::chrono::steady_clock::now();
      auto res = (*q)->run(sql, l);
      ms.push_back(elapsedMs(t));
      if (!res.ok()) {
        error = res.status().message();
        break;
      }
      rows = res->rows.size();
      truncated = res->truncated;
    }
    std::sort(ms.begin(), ms.end());
    cook.push_back({{"query", title},
                    {"median_ms", ms[ms.size() / 2]},
                    {"runs_ms", ms},
                    {"rows", rows},
                    {"truncated", truncated},
                    {"error", error}});
  }
  out["cookbook"] = cook;

  // The cluster: per-node databases, asked in turn, merged.
  std::vector<std::string> paths;
  for (int k = 1; k <= nodes; ++k) {
    const std::string p = dir + "/cluster-n" + std::to_string(k) + ".db";
    if (migrationsIn(p) != perNode) generate(p, perNode, "n" + std::to_string(k), 100 + k);
    paths.push_back(p);
  }
  const std::pair<const char*, std::pair<const char*, const char*>> clusterQueries[] = {
      {"downtime p95 per mode, this week, across the cluster",
       {"SELECT mode, downtime_ms FROM migrations WHERE role = 'source' AND result = 'committed' "
        "AND started_ms > now_ms() - 7 * 86400000",
        "SELECT mode, count(*) AS moves, percentile(downtime_ms, 95) AS p95_ms FROM rows GROUP BY mode"}},
      {"failures per node and cause, all history",
       {"SELECT error, count(*) AS times FROM migrations WHERE result != 'committed' GROUP BY error",
        "SELECT node, error, times FROM rows ORDER BY times DESC LIMIT 20"}},
  };
  nlohmann::json cluster = nlohmann::json::array();
  for (const auto& [title, sqls] : clusterQueries) {
    std::vector<double> ms;
    size_t rows = 0;
    std::string error;
    for (int r = 0; r < runs; ++r) {
      auto t = std::chrono::steady_clock::now();
      std::vector<std::pair<std::string, store::Rows>> per;
      for (size_t k = 0; k < paths.size() && error.empty(); ++k) {
        auto nq = store::AuditQuery::open(paths[k]);
        auto res = nq.ok() ? (*nq)->run(sqls.first, {}) : Result<store::Rows>(nq.status());
        if (!res.ok()) error = res.status().message();
        else per.emplace_back("n" + std::to_string(k + 1), std::move(*res));
      }
      auto merged = store::mergeRows(per, sqls.second, {});
      ms.push_back(elapsedMs(t));
      if (!merged.ok()) error = merged.status().message();
      else rows = merged->rows.size();
    }
    std::sort(ms.begin(), ms.end());
    cluster.push_back(
        {{"query", title}, {"median_ms", ms[ms.size() / 2]}, {"runs_ms", ms}, {"rows", rows}, {"error", error}});
  }
  out["cluster"] = cluster;
  std::cout << out.dump(2) << "\n";
  return 0;
}
