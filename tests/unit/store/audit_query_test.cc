// Audit queries against real SQLite files: the views, every refusal, the
// limits, the merge across nodes, and docs/audit.md's cookbook on a
// fixture database (so the cookbook cannot rot).
#include "lxmig/store/audit_query.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "audit_cookbook.h"
#include "lxmig/base/files.h"
#include "lxmig/store/audit_log.h"
#include "unit/temp_dir.h"

namespace lxmig::store {
namespace {

constexpr int64_t kMinute = 60 * 1000;
constexpr int64_t kHour = 60 * kMinute;

int64_t wallNow() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// One node's history, times relative to a day ago:
//   m0  web  pre-copy       committed, ten days ago (outside "this week")
//   m1  web  pre-copy       committed, downtime 100, rounds converged
//   m2  web  pre-copy       committed 30 min later, downtime 300, round limit
//   m3  db   stop-and-copy  failed in the dump
//   m4  db   stop-and-copy  committed, downtime 900, reason rebalance
//   m5  api  stop-and-copy  aborted: target refused
//   m6  api  incoming       from n2, committed (this node was the target)
class Fixture {
 public:
  explicit Fixture(const std::string& path) : path_(path), t0_(wallNow() - 24 * kHour) {
    auto log = AuditLog::open(path);
    EXPECT_TRUE(log.ok()) << log.status().toString();
    if (!log.ok()) return;
    log_ = std::move(*log);
    migration("m0", "web", "pre-copy", "operator", t0_ - 9 * 24 * kHour, "committed", "", 5000, 9000, 1 << 20);
    migration("m1", "web", "pre-copy", "operator", t0_, "committed", "", 100, 2000, 1000000000);
    phase("m1", "prepare", t0_, 20, 0);
    phase("m1", "precopy", t0_ + 20, 1500, 900000000);
    phase("m1", "freeze", t0_ + 1520, 5, 0);
    phase("m1", "dump", t0_ + 1525, 60, 0);
    phase("m1", "transfer", t0_ + 1585, 20, 100000000);
    phase("m1", "restore", t0_ + 1605, 15, 0);
    round("m1", 0, 100000, 200e6, 500e6, 800000000, "");
    round("m1", 1, 20000, 100e6, 500e6, 80000000, "");
    round("m1", 2, 500, 10e6, 500e6, 20000000, "converged");
    event("m1", "warn", "container `web` was no longer frozen before the dump; froze it again", t0_ + 1524);
    event("m1", "info", "round 0 sent", t0_ + 900);
    migration("m2", "web", "pre-copy", "operator", t0_ + 30 * kMinute, "committed", "", 300, 3000, 500000000);
    phase("m2", "dump", t0_ + 30 * kMinute + 2000, 140, 0);
    round("m2", 0, 100000, 400e6, 300e6, 300000000, "");
    round("m2", 1, 90000, 400e6, 300e6, 150000000, "round limit");
    migration("m3", "db", "stop-and-copy", "operator", t0_ + 2 * kHour, "failed",
              "CRIU dump of `db` failed: Can't dump", -1, 500, 0);
    phase("m3", "dump", t0_ + 2 * kHour + 10, 400, 0, "failed");
    migration("m4", "db", "stop-and-copy", "rebalance", t0_ + 3 * kHour, "committed", "", 900, 1500, 200000000);
    phase("m4", "dump", t0_ + 3 * kHour + 10, 300, 0);
    migration("m5", "api", "stop-and-copy", "operator", t0_ + 4 * kHour, "aborted", "target refused: no room", -1, 200,
              0);
    migration("m6", "api", "incoming", "incoming from n2", t0_ + 5 * kHour, "committed", "", 250, 1200, 300000000, "n2",
              "n1");
    NodeEvent e;
    e.atMs = t0_ + 6 * kHour;
    e.level = "warn";
    e.kind = "peer-refused";
    e.peer = "stranger.example";
    e.text = "refused on the peer port: its certificate names no node of the cluster";
    EXPECT_TRUE(log_->addNodeEvent(e).ok());
    DecisionRecord d;
    d.atMs = t0_ + 3 * kHour - 1000;
    d.container = "db";
    d.fromNode = "n1";
    d.toNode = "n2";
    d.action = "move";
    d.reason = "n1 memory 92% > 80%";
    d.scoreBefore = 0.92;
    d.scoreAfter = 0.61;
    d.migrationId = "m4";
    EXPECT_TRUE(log_->addDecision(d).ok());
    d.atMs += 10;
    d.container = "web";
    d.toNode = "";
    d.action = "stay";
    d.reason = "moved within the last hour";
    d.scoreBefore.reset();
    d.scoreAfter.reset();
    d.migrationId = "";
    EXPECT_TRUE(log_->addDecision(d).ok());
  }

 private:
  void migration(const std::string& id, const std::string& c, const std::string& mode, const std::string& reason,
                 int64_t started, const std::string& result, const std::string& error, int64_t downtime, int64_t total,
                 int64_t bytes, const std::string& source = "n1", const std::string& target = "n2") {
    MigrationRecord m;
    m.id = id;
    m.container = c;
    m.source = source;
    m.target = target;
    m.mode = mode;
    m.reason = reason;
    m.startedMs = started;
    ASSERT_TRUE(log_->beginMigration(m).ok());
    if (mode == "pre-copy") {
      ASSERT_TRUE(log_->setMode(id, mode, "uffd-wp").ok());
    }
    ASSERT_TRUE(log_->finishMigration(id, result, error, started + total, bytes, downtime, total).ok());
  }
  void phase(const std::string& id, const std::string& name, int64_t at, int64_t ms, int64_t bytes,
             const std::string& result = "ok") {
    auto p = log_->beginPhase(id, name, at);
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(log_->endPhase(*p, at + ms, bytes, result, result == "ok" ? "" : "Can't dump", "").ok());
  }
  void round(const std::string& id, int k, int64_t dirty, double dirtyBps, double sendBps, int64_t bytes,
             const std::string& stop) {
    RoundRecord r;
    r.round = k;
    r.dirtyPages = dirty;
    r.pagesSent = bytes / 4096;
    r.bytes = bytes;
    r.dirtyRateBps = dirtyBps;
    r.sendRateBps = sendBps;
    r.stop = stop;
    ASSERT_TRUE(log_->addRound(id, r).ok());
  }
  void event(const std::string& id, const std::string& level, const std::string& text, int64_t at) {
    ASSERT_TRUE(log_->addEvent(id, level, text, at).ok());
  }

  std::string path_;
  int64_t t0_;
  std::unique_ptr<AuditLog> log_;
};

class AuditQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    path_ = tmp_.path() + "/audit.db";
    Fixture f(path_);
    auto q = AuditQuery::open(path_);
    ASSERT_TRUE(q.ok()) << q.status().toString();
    q_ = std::move(*q);
  }

  Result<Rows> run(const std::string& sql, QueryLimits limits = {}) { return q_->run(sql, limits); }

  // "a|b|c" per row.
  static std::vector<std::string> lines(const Rows& r) {
    std::vector<std::string> out;
    for (const auto& row : r.rows) {
      std::string l;
      for (size_t i = 0; i < row.size(); ++i) l += (i ? "|" : "") + row[i].str();
      out.push_back(l);
    }
    return out;
  }

  void expectRefused(const std::string& sql, const std::string& what) {
    auto r = run(sql);
    ASSERT_FALSE(r.ok()) << sql << " was not refused";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().toString();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << sql << " -> " << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one line: " << r.status().message();
  }

  testing::TempDir tmp_{"lxmig-audit-query"};
  std::string path_;
  std::unique_ptr<AuditQuery> q_;
};

TEST_F(AuditQueryTest, ViewsHaveTheDocumentedColumns) {
  const std::map<std::string, std::string> expected = {
      {"migrations",
       "migration_id|container|role|source_node|target_node|mode|tracker|reason|started_ms|ended_ms|result|error|"
       "bytes|downtime_ms|total_ms"},
      {"phases", "migration_id|phase|started_ms|ended_ms|duration_ms|bytes|result|error|detail"},
      {"rounds",
       "migration_id|round|started_ms|duration_ms|scan_us|processes|dirty_pages|pages_sent|bytes|dirty_rate_bps|"
       "send_rate_bps|predicted_downtime_ms|stop_reason"},
      {"events", "at_ms|level|kind|migration_id|peer|text"},
      {"decisions", "at_ms|container|from_node|to_node|action|reason|score_before|score_after|migration_id"}};
  auto doc = readFile(std::string(LXMIG_SOURCE_DIR) + "/docs/audit.md");
  ASSERT_TRUE(doc.ok());
  for (const auto& [view, columns] : expected) {
    auto r = run("SELECT * FROM " + view + " LIMIT 0");
    ASSERT_TRUE(r.ok()) << view << ": " << r.status().toString();
    std::string got;
    for (const auto& c : r->columns) got += (got.empty() ? "" : "|") + c;
    EXPECT_EQ(got, columns) << view;
    // Every column is in the documentation, in a table row.
    for (const auto& c : r->columns)
      EXPECT_NE(doc->find("`" + c + "`"), std::string::npos) << view << "." << c << " is not in docs/audit.md";
  }
  // A failed migration's downtime is NULL, not -1 (aggregates skip it).
  auto r = run("SELECT downtime_ms IS NULL, role FROM migrations WHERE migration_id IN ('m3', 'm6') ORDER BY 2");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(lines(*r), (std::vector<std::string>{"1|source", "0|target"}));
}

TEST_F(AuditQueryTest, AnAdoptionIsLocal) {
  auto log = AuditLog::open(path_);
  ASSERT_TRUE(log.ok()) << log.status().toString();
  auto& log_ = *log;
  MigrationRecord m;
  m.id = "ad1";
  m.container = "adopted";
  m.source = m.target = "n1";
  m.mode = "adopt";
  m.reason = "adopt";
  m.startedMs = 1000;
  ASSERT_TRUE(log_->beginMigration(m).ok());
  ASSERT_TRUE(log_->finishMigration("ad1", "committed", "", 1400, 1 << 20, 120, 400).ok());
  auto r = run("SELECT role, mode, downtime_ms FROM migrations WHERE migration_id = 'ad1'");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(lines(*r), (std::vector<std::string>{"local|adopt|120"}));
}

TEST_F(AuditQueryTest, EveryWriteAndEscapeIsRefusedInOneLine) {
  expectRefused("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH");
  expectRefused("DETACH DATABASE main", "DETACH");
  expectRefused("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode");
  expectRefused(std::string("PRAGMA`\xff\n\xff`"), "PRAGMA \xff?\xff");  // a quoted name with a newline: one line
  expectRefused("PRAGMA writable_schema = 1", "PRAGMA writable_schema");
  expectRefused("PRAGMA user_version", "PRAGMA user_version");
  expectRefused("DELETE FROM main.migrations", "DELETE");
  expectRefused("INSERT INTO main.node_events(at_ms, level, kind, text) VALUES (1, 'x', 'y', 'z')", "INSERT");
  expectRefused("UPDATE main.migrations SET result = 'x'", "UPDATE");
  expectRefused("CREATE TEMP TABLE t(x)", "CREATE TABLE");
  expectRefused("CREATE TABLE t(x)", "CREATE TABLE");
  expectRefused("CREATE TEMP VIEW v AS SELECT 1", "CREATE VIEW");
  expectRefused("DROP VIEW migrations", "DROP");
  expectRefused("BEGIN", "transaction");
  expectRefused("SAVEPOINT s", "SAVEPOINT");
  expectRefused("ANALYZE", "is not allowed");  // it would create sqlite_stat1 first
  expectRefused("SELECT load_extension('/tmp/evil.so')", "load_extension");
  expectRefused("SELECT 1; DELETE FROM main.migrations", "one statement");
  expectRefused("SELECT 1; SELECT 2", "one statement");
  expectRefused("SELECT ?", "SQL: ");  // no bound parameters
  expectRefused("SELEC nonsense", "SQL: ");
  expectRefused("", "empty");
  // Nothing was written: every row is still there, the file reads the same.
  auto r = run("SELECT count(*) FROM migrations");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows[0][0].str(), "7");
  // Describing the schema is reading.
  auto info = run("PRAGMA table_info(migrations)");
  ASSERT_TRUE(info.ok()) << info.status().toString();
  EXPECT_GE(info->rows.size(), 10u);
  // A trailing semicolon and blanks are one statement.
  EXPECT_TRUE(run("SELECT 1;  \n").ok());
}

TEST_F(AuditQueryTest, ARunawayQueryStopsAtItsTimeLimit) {
  QueryLimits l;
  l.timeoutMs = 200;
  l.maxRows = 10;
  const auto start = std::chrono::steady_clock::now();
  auto r = run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", l);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_NE(r.status().message().find("time limit of 200 ms"), std::string::npos) << r.status().message();
  EXPECT_LT(ms, 10000) << "the query was not stopped";
  // The connection serves the next query.
  EXPECT_TRUE(run("SELECT 1").ok());
}

TEST_F(AuditQueryTest, RowsAreCapped) {
  QueryLimits l;
  l.maxRows = 10;
  auto r = run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000) SELECT x FROM c", l);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->rows.size(), 10u);
  EXPECT_TRUE(r->truncated);
  l.maxRows = 0;
  EXPECT_EQ(run("SELECT 1", l).status().code(), Code::kInvalidArgument);
  l.maxRows = 10;
  l.timeoutMs = QueryLimits::kMaxTimeoutMs + 1;
  EXPECT_EQ(run("SELECT 1", l).status().code(), Code::kInvalidArgument);
}

TEST_F(AuditQueryTest, PercentileInterpolatesAndChecksItsArgument) {
  auto r =
      run("WITH v(x) AS (VALUES (1), (2), (3), (4), (NULL)) "
          "SELECT percentile(x, 0), percentile(x, 50), percentile(x, 95), percentile(x, 100) FROM v");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(lines(*r), (std::vector<std::string>{"1.0|2.5|3.85|4.0"}));
  auto bad = run("SELECT percentile(downtime_ms, 101) FROM migrations");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("P must be a number from 0 to 100"), std::string::npos);
  auto none = run("SELECT percentile(downtime_ms, 50) FROM migrations WHERE 0");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->rows[0][0].kind, Cell::Kind::kNull);
}

TEST_F(AuditQueryTest, MergeRunsAcrossNodes) {
  auto a = run("SELECT container, downtime_ms FROM migrations WHERE result = 'committed' AND role = 'source'");
  ASSERT_TRUE(a.ok());
  Rows b;
  b.columns = {"container", "downtime_ms"};
  b.rows = {{Cell::of(std::string("web")), Cell::of(int64_t{700})}, {Cell::of(std::string("x")), Cell::null()}};
  std::vector<std::pair<std::string, Rows>> per = {{"n1", *a}, {"n2", b}};
  auto plain = mergeRows(per, "", {});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->columns.front(), "node");
  EXPECT_EQ(plain->rows.size(), a->rows.size() + 2);
  EXPECT_EQ(plain->rows.back()[0].str(), "n2");
  auto merged = mergeRows(per,
                          "SELECT container, count(*) AS moves, max(downtime_ms) AS max_ms, "
                          "group_concat(DISTINCT node) AS nodes FROM rows GROUP BY container ORDER BY container",
                          {});
  ASSERT_TRUE(merged.ok()) << merged.status().toString();
  EXPECT_EQ(lines(*merged), (std::vector<std::string>{"db|1|900|n1", "web|4|5000|n1,n2", "x|1||n2"}));
  // The merge is guarded like a query.
  auto drop = mergeRows(per, "DROP TABLE rows", {});
  ASSERT_FALSE(drop.ok());
  EXPECT_NE(drop.status().message().find("DROP"), std::string::npos);
  EXPECT_FALSE(mergeRows(per, "ATTACH DATABASE '/tmp/y' AS y", {}).ok());
  // Nodes that answer with other columns are not mixed.
  b.columns = {"container"};
  b.rows.clear();
  auto mismatch = mergeRows({{"n1", *a}, {"n2", b}}, "", {});
  EXPECT_EQ(mismatch.status().code(), Code::kFailedPrecondition);
  // Repeated column names are told apart in `rows`.
  auto twice = run("SELECT count(*), count(*) FROM migrations");
  ASSERT_TRUE(twice.ok());
  auto renamed = mergeRows({{"n1", *twice}}, "SELECT * FROM rows", {});
  ASSERT_TRUE(renamed.ok()) << renamed.status().toString();
  EXPECT_EQ(renamed->columns, (std::vector<std::string>{"node", "count(*)", "count(*)_2"}));
}

std::vector<std::pair<std::string, std::string>> cookbook() {
  auto doc = readFile(std::string(LXMIG_SOURCE_DIR) + "/docs/audit.md");
  return doc.ok() ? testing::cookbookQueries(*doc) : std::vector<std::pair<std::string, std::string>>{};
}

TEST_F(AuditQueryTest, TheCookbookAnswersOnTheFixture) {
  // Title -> the rows the fixture must give.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"Downtime percentiles per mode, this week", {"pre-copy|2|200.0|290.0|300", "stop-and-copy|1|900.0|900.0|900"}},
      {"Migrations that failed, and why",
       {"m3|db|n2|failed|CRIU dump of `db` failed: Can't dump", "m5|api|n2|aborted|target refused: no room"}},
      {"The most common causes of failure", {"CRIU dump of `db` failed: Can't dump|1", "target refused: no room|1"}},
      {"Containers moved twice within an hour, this week", {"web|m1|m2|30"}},
      {"Pre-copies whose rounds never converged", {"m2|1|round limit"}},
      {"The slowest steps of the frozen window, this week",
       {"dump|3|167.0|300", "transfer|1|20.0|20", "restore|1|15.0|15", "freeze|1|5.0|5"}},
      {"One migration's phases, step by step",
       {"prepare|20|0|ok", "precopy|1500|900000000|ok", "freeze|5|0|ok", "dump|60|0|ok", "transfer|20|100000000|ok",
        "restore|15|0|ok"}},
      {"Moves per reason", {"operator|5|3", "rebalance|1|1"}},
      {"How much of a pre-copy left before the freeze",
       {"m1|1000000000|900000000|90.0", "m2|500000000|450000000|90.0"}},
      {"Rounds where the workload wrote faster than half the link", {"m2|1|381.0|286.0"}},
      {"Peers this node refused", {}},  // checked by count below: the time is the test's
      {"What the rebalancer decided, and why",
       {"web|stay|n1||moved within the last hour||", "db|move|n1|n2|n1 memory 92% > 80%|0.92|0.61"}},
      {"Migrations this node received", {"m6|api|n2|committed|250"}},
      {"Warnings and errors of migrations",
       {"m1|warn|container `web` was no longer frozen before the dump; froze it again"}},
      {"Bytes moved per day, last 30 days", {}},  // days depend on the clock: checked by sum below
  };
  auto book = cookbook();
  ASSERT_GE(book.size(), 12u) << "docs/audit.md's cookbook has fewer than 12 queries";
  std::set<std::string> seen;
  for (const auto& [title, sql] : book) {
    SCOPED_TRACE(title);
    seen.insert(title);
    auto r = run(sql);
    ASSERT_TRUE(r.ok()) << r.status().toString() << "\n" << sql;
    auto it = expected.find(title);
    ASSERT_NE(it, expected.end()) << "a cookbook query without expected rows in this test";
    if (title == "Peers this node refused") {
      ASSERT_EQ(r->rows.size(), 1u);
      EXPECT_EQ(r->rows[0][1].str(), "stranger.example");
    } else if (title == "Bytes moved per day, last 30 days") {
      int64_t moves = 0, bytes = 0;
      for (const auto& row : r->rows) moves += row[1].integer, bytes += row[2].integer;
      EXPECT_EQ(moves, 6);
      EXPECT_EQ(bytes, (1 << 20) + 1000000000 + 500000000 + 200000000);
    } else {
      EXPECT_EQ(lines(*r), it->second) << sql;
    }
  }
  for (const auto& [title, rows] : expected) EXPECT_TRUE(seen.count(title)) << "not in the cookbook: " << title;
}

}  // namespace
}  // namespace lxmig::store
