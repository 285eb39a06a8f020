// The audit store against a real SQLite file in a temporary directory.
#include "lxmig/store/audit_log.h"

#include "lxmig/store/audit_query.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "unit/temp_dir.h"

namespace lxmig::store {
namespace {

// The first value of a query's first row, through the audit views.
std::string scalar(const std::string& db, const std::string& sql) {
  auto q = AuditQuery::open(db);
  if (!q.ok()) return q.status().toString();
  auto r = (*q)->run(sql, {});
  if (!r.ok()) return r.status().toString();
  return r->rows.empty() ? "no rows" : r->rows[0][0].str();
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    path_ = tmp_.path() + "/audit.db";
  }

  std::unique_ptr<AuditLog> openOrDie() {
    auto r = AuditLog::open(path_);
    EXPECT_TRUE(r.ok()) << r.status().toString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static MigrationRecord record(const std::string& id, const std::string& container, int64_t started) {
    MigrationRecord m;
    m.id = id;
    m.container = container;
    m.source = "n1";
    m.target = "n2";
    m.mode = "stop-and-copy";
    m.startedMs = started;
    m.reason = "test";
    return m;
  }

  testing::TempDir tmp_{"lxmig-store-test"};
  std::string path_;
};

TEST_F(AuditLogTest, CreatesWalDatabaseAtLatestSchema) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->schemaVersion(), AuditLog::latestSchemaVersion());
  EXPECT_GE(AuditLog::latestSchemaVersion(), 1);
  // In WAL mode a write goes to the -wal file beside the database.
  ASSERT_TRUE(log->beginMigration(record("w1", "c", 1)).ok());
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  // Reopening an up-to-date database changes nothing.
  log.reset();
  log = openOrDie();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->schemaVersion(), AuditLog::latestSchemaVersion());
}

TEST_F(AuditLogTest, RefusesDatabaseFromNewerVersion) {
  { auto log = openOrDie(); }
  sqlite3* db = nullptr;
  ASSERT_EQ(::sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(::sqlite3_exec(db, "PRAGMA user_version=999", nullptr, nullptr, nullptr), SQLITE_OK);
  ::sqlite3_close(db);
  auto r = AuditLog::open(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("newer"), std::string::npos) << r.status().message();
}

TEST_F(AuditLogTest, RecordsMigrationWithPhasesAndEvents) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->beginMigration(record("m-0001", "web", 1000)).ok());
  auto p1 = log->beginPhase("m-0001", "prepare", 1000);
  ASSERT_TRUE(p1.ok());
  ASSERT_TRUE(log->endPhase(*p1, 1010, 0, "ok", "", "").ok());
  auto p2 = log->beginPhase("m-0001", "transfer", 1010);
  ASSERT_TRUE(p2.ok());
  ASSERT_TRUE(log->endPhase(*p2, 1500, 4096, "failed", "target unreachable", "chunks=1").ok());
  ASSERT_TRUE(log->addEvent("m-0001", "warn", "source thawed", 1501).ok());
  ASSERT_TRUE(log->finishMigration("m-0001", "aborted", "target unreachable", 1502, 4096, 480, 502).ok());

  auto m = log->getMigration("m-0001");
  ASSERT_TRUE(m.ok()) << m.status().toString();
  EXPECT_EQ(m->container, "web");
  EXPECT_EQ(m->result, "aborted");
  EXPECT_EQ(m->error, "target unreachable");
  EXPECT_EQ(m->bytes, 4096);
  EXPECT_EQ(m->downtimeMs, 480);
  EXPECT_EQ(m->totalMs, 502);
  EXPECT_EQ(m->endedMs, 1502);
  ASSERT_EQ(m->phases.size(), 2u);
  EXPECT_EQ(m->phases[0].name, "prepare");
  EXPECT_EQ(m->phases[0].endedMs - m->phases[0].startedMs, 10);
  EXPECT_EQ(m->phases[1].name, "transfer");
  EXPECT_EQ(m->phases[1].bytes, 4096);
  EXPECT_EQ(m->phases[1].result, "failed");
  EXPECT_EQ(m->phases[1].error, "target unreachable");
  EXPECT_EQ(m->phases[1].detail, "chunks=1");
  auto ev = log->events("m-0001");
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].level, "warn");
  EXPECT_EQ((*ev)[0].text, "source thawed");
}

TEST_F(AuditLogTest, DuplicateIdIsRefused) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->beginMigration(record("dup", "a", 1)).ok());
  Status st = log->beginMigration(record("dup", "b", 2));
  EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.toString();
}

TEST_F(AuditLogTest, UnknownIdsAreNotFound) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  EXPECT_EQ(log->getMigration("nope").status().code(), Code::kNotFound);
  EXPECT_EQ(log->finishMigration("nope", "committed", "", 1, 0, 0, 0).code(), Code::kNotFound);
  EXPECT_EQ(log->endPhase(12345, 1, 0, "ok", "", "").code(), Code::kNotFound);
  EXPECT_EQ(log->getMigration("").status().code(), Code::kInvalidArgument);
}

TEST_F(AuditLogTest, IdPrefixResolvesOnlyWhenUnique) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->beginMigration(record("abcd1111", "a", 1)).ok());
  ASSERT_TRUE(log->beginMigration(record("abcd2222", "a", 2)).ok());
  auto one = log->getMigration("abcd1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->id, "abcd1111");
  EXPECT_EQ(log->getMigration("abcd").status().code(), Code::kInvalidArgument);
  // Shorter than 4 characters never matches as a prefix.
  EXPECT_EQ(log->getMigration("abc").status().code(), Code::kNotFound);
}

TEST_F(AuditLogTest, ListIsNewestFirstAndFiltered) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  for (int i = 0; i < 5; ++i) {
    std::string id = "m" + std::to_string(i);
    ASSERT_TRUE(log->beginMigration(record(id, i % 2 ? "odd" : "even", 100 + i)).ok());
    ASSERT_TRUE(log->finishMigration(id, i == 4 ? "aborted" : "committed", "", 200 + i, 0, 1, 2).ok());
  }
  auto all = log->listMigrations({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[0].id, "m4");
  EXPECT_EQ((*all)[4].id, "m0");

  MigrationFilter f;
  f.container = "odd";
  auto odd = log->listMigrations(f);
  ASSERT_TRUE(odd.ok());
  ASSERT_EQ(odd->size(), 2u);
  EXPECT_EQ((*odd)[0].id, "m3");

  MigrationFilter g;
  g.result = "aborted";
  auto ab = log->listMigrations(g);
  ASSERT_TRUE(ab.ok());
  ASSERT_EQ(ab->size(), 1u);
  EXPECT_EQ((*ab)[0].id, "m4");

  MigrationFilter h;
  h.limit = 2;
  auto two = log->listMigrations(h);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
}

TEST_F(AuditLogTest, InterruptedMigrationsAreMarkedAfterRestart) {
  {
    auto log = openOrDie();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->beginMigration(record("live", "c", 10)).ok());
    ASSERT_TRUE(log->beginPhase("live", "transfer", 11).ok());
    ASSERT_TRUE(log->beginMigration(record("done", "c", 5)).ok());
    ASSERT_TRUE(log->finishMigration("done", "committed", "", 9, 0, 1, 4).ok());
  }
  auto log = openOrDie();
  ASSERT_TRUE(log);
  auto n = log->failInterrupted(50);
  ASSERT_TRUE(n.ok()) << n.status().toString();
  EXPECT_EQ(*n, 1);
  auto live = log->getMigration("live");
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(live->result, "interrupted");
  EXPECT_EQ(live->endedMs, 50);
  ASSERT_EQ(live->phases.size(), 1u);
  EXPECT_EQ(live->phases[0].result, "interrupted");
  auto done = log->getMigration("done");
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->result, "committed");
}

TEST_F(AuditLogTest, NodeEventsAreKeptNewestFirst) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->addNodeEvent({1000, "warn", "peer-refused", "stranger", "names no node"}).ok());
  ASSERT_TRUE(log->addNodeEvent({2000, "info", "forwarded", "n1", "rm web forwarded by n1"}).ok());
  auto ev = log->nodeEvents(10);
  ASSERT_TRUE(ev.ok()) << ev.status().toString();
  ASSERT_EQ(ev->size(), 2u);
  EXPECT_EQ((*ev)[0].kind, "forwarded");
  EXPECT_EQ((*ev)[1].peer, "stranger");
  EXPECT_EQ((*ev)[1].atMs, 1000);
  EXPECT_EQ(log->nodeEvents(1)->size(), 1u);
}

TEST_F(AuditLogTest, ConcurrentWritersDoNotLoseRows) {
  auto log = openOrDie();
  ASSERT_TRUE(log);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        EXPECT_TRUE(log->beginMigration(record(id, "c", i)).ok());
        auto p = log->beginPhase(id, "dump", i);
        EXPECT_TRUE(p.ok());
        if (p.ok()) {
          EXPECT_TRUE(log->endPhase(*p, i + 1, 1, "ok", "", "").ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(scalar(path_, "SELECT COUNT(*) FROM phases WHERE result='ok'"), "200");
}

}  // namespace
}  // namespace lxmig::store

namespace lxmig::store {
namespace {

TEST(AuditRounds, RoundsAndModeAreRecordedAndRead) {
  testing::TempDir tmp("lxmig-rounds");
  ASSERT_TRUE(tmp.ok());
  const std::string& dir = tmp.path();
  {
    auto log = AuditLog::open(dir + "/audit.db");
    ASSERT_TRUE(log.ok());
    MigrationRecord m;
    m.id = "r1";
    m.container = "c";
    m.source = "a";
    m.target = "b";
    m.mode = "pre-copy";
    m.startedMs = 1;
    ASSERT_TRUE((*log)->beginMigration(m).ok());
    ASSERT_TRUE((*log)->setMode("r1", "pre-copy", "uffd-wp").ok());
    for (int k = 0; k < 3; ++k) {
      RoundRecord r;
      r.round = k;
      r.dirtyPages = 100 - k;
      r.pagesSent = k == 2 ? 0 : 100 - k;
      r.bytes = r.pagesSent * 4096;
      r.dirtyRateBps = 1.5 * k;
      r.stop = k == 2 ? "converged" : "";
      ASSERT_TRUE((*log)->addRound("r1", r).ok());
    }
    RoundRecord dup;
    EXPECT_FALSE((*log)->addRound("r1", dup).ok()) << "round numbers are unique per migration";
    auto got = (*log)->getMigration("r1");
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->tracker, "uffd-wp");
    ASSERT_EQ(got->rounds.size(), 3u);
    EXPECT_EQ(got->rounds[1].pagesSent, 99);
    EXPECT_DOUBLE_EQ(got->rounds[2].dirtyRateBps, 3.0);
    EXPECT_EQ(got->rounds[2].stop, "converged");
    EXPECT_EQ(scalar(dir + "/audit.db", "SELECT sum(bytes) FROM rounds WHERE migration_id='r1'"),
              std::to_string((100 + 99) * 4096));
  }
}

}  // namespace
}  // namespace lxmig::store

namespace lxmig::store {
namespace {

constexpr int64_t kDay = 86400 * 1000;

// One day's worth of history: `n` finished migrations with phases, rounds
// and events, a node event and a decision, all in that day.
void addDay(AuditLog& log, int day, int n) {
  for (int k = 0; k < n; ++k) {
    const int64_t t = day * kDay + k * 1000;
    MigrationRecord m;
    m.id = "d" + std::to_string(day) + "-" + std::to_string(k);
    m.container = "c" + std::to_string(k % 7);
    m.source = "n1";
    m.target = "n2";
    m.mode = "pre-copy";
    m.startedMs = t;
    ASSERT_TRUE(log.beginMigration(m).ok());
    for (const char* ph : {"prepare", "precopy", "freeze", "dump", "transfer", "restore"}) {
      auto p = log.beginPhase(m.id, ph, t);
      ASSERT_TRUE(p.ok());
      ASSERT_TRUE(log.endPhase(*p, t + 10, 4096, "ok", "", "passes=1").ok());
    }
    for (int r = 0; r < 2; ++r) {
      RoundRecord rr;
      rr.round = r;
      rr.bytes = 1 << 20;
      ASSERT_TRUE(log.addRound(m.id, rr).ok());
    }
    ASSERT_TRUE(log.addEvent(m.id, "info", "an event of " + m.id, t + 5).ok());
    ASSERT_TRUE(log.finishMigration(m.id, "committed", "", t + 500, 1 << 20, 100, 500).ok());
  }
  NodeEvent e;
  e.atMs = day * kDay;
  e.level = "info";
  e.kind = "forwarded";
  e.text = "day " + std::to_string(day);
  ASSERT_TRUE(log.addNodeEvent(e).ok());
  DecisionRecord d;
  d.atMs = day * kDay;
  d.container = "c0";
  d.fromNode = "n1";
  d.action = "stay";
  ASSERT_TRUE(log.addDecision(d).ok());
}

int64_t count(const std::string& db, const std::string& view) {
  auto q = AuditQuery::open(db);
  if (!q.ok()) return -1;
  auto r = (*q)->run("SELECT count(*) FROM " + view, {});
  return r.ok() ? r->rows[0][0].integer : -1;
}

// The database file's size once the WAL is folded into it.
int64_t fileBytes(const std::string& db) {
  sqlite3* raw = nullptr;
  ::sqlite3_open(db.c_str(), &raw);
  ::sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  ::sqlite3_close(raw);
  return static_cast<int64_t>(std::filesystem::file_size(db));
}

TEST(AuditRetention, PruneRemovesOldRowsWithTheirPartsInBatches) {
  testing::TempDir tmp("lxmig-retention");
  ASSERT_TRUE(tmp.ok());
  const std::string db = tmp.path() + "/audit.db";
  auto log = AuditLog::open(db);
  ASSERT_TRUE(log.ok());
  for (int day = 1; day <= 3; ++day) addDay(**log, day, 30);
  MigrationRecord running;
  running.id = "still-running";
  running.container = "c";
  running.source = "n1";
  running.target = "n2";
  running.mode = "pre-copy";
  running.startedMs = kDay;  // old, but not finished: kept
  ASSERT_TRUE((*log)->beginMigration(running).ok());
  // Everything before day 3: two days of rows, 25 migrations per batch.
  int batches = 0;
  AuditLog::Pruned sum;
  for (;; ++batches) {
    auto r = (*log)->prune(3 * kDay, 25);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    EXPECT_LE(r->migrations, 25);
    sum.migrations += r->migrations;
    sum.nodeEvents += r->nodeEvents;
    sum.decisions += r->decisions;
    if (r->total() == 0) break;
  }
  EXPECT_EQ(batches, 3) << "60 migrations in batches of 25";
  EXPECT_EQ(sum.migrations, 60);
  EXPECT_EQ(sum.nodeEvents, 2);
  EXPECT_EQ(sum.decisions, 2);
  EXPECT_EQ(count(db, "migrations"), 31);
  EXPECT_EQ(count(db, "phases"), 30 * 6) << "phases go with their migration";
  EXPECT_EQ(count(db, "rounds"), 30 * 2);
  EXPECT_EQ(count(db, "events"), 30 + 1);
  EXPECT_EQ(count(db, "decisions"), 1);
  EXPECT_TRUE((*log)->getMigration("still-running").ok());
}

// A node that keeps migrating under a retention of three days: after the
// first days the file stops growing (freed pages are used again).
TEST(AuditRetention, TheDatabaseDoesNotGrowWithoutBound) {
  testing::TempDir tmp("lxmig-retention-bound");
  ASSERT_TRUE(tmp.ok());
  const std::string db = tmp.path() + "/audit.db";
  auto log = AuditLog::open(db);
  ASSERT_TRUE(log.ok());
  std::vector<int64_t> size;
  for (int day = 1; day <= 12; ++day) {
    addDay(**log, day, 150);
    for (;;) {
      auto r = (*log)->prune((day - 3) * kDay, 100);
      ASSERT_TRUE(r.ok());
      if (r->total() == 0) break;
    }
    size.push_back(fileBytes(db));
  }
  EXPECT_EQ(count(db, "migrations"), 4 * 150) << "days 9..12 are kept";
  // Steady state from day 5 on: the last size within 10% of day 5's.
  EXPECT_LE(size.back(), size[4] + size[4] / 10) << "day 5: " << size[4] << " bytes, day 12: " << size.back();
  EXPECT_GT(size[4], size[0]) << "the history did grow at first";
}

}  // namespace
}  // namespace lxmig::store
