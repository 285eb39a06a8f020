#include "lxmig/store/audit_log.h"

#include <sqlite3.h>

#include <chrono>
#include <iterator>

#include "schema_steps.h"
#include "sqlite_util.h"

namespace lxmig::store {
namespace {

int64_t wallNowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

constexpr const char* kMigrationColumns =
    "id, container, source, target, mode, started_ms, COALESCE(ended_ms, 0), result, error, "
    "bytes, downtime_ms, total_ms, reason, tracker";

MigrationRecord readMigration(const Stmt& s) {
  MigrationRecord m;
  m.id = s.text(0);
  m.container = s.text(1);
  m.source = s.text(2);
  m.target = s.text(3);
  m.mode = s.text(4);
  m.startedMs = s.i64(5);
  m.endedMs = s.i64(6);
  m.result = s.text(7);
  m.error = s.text(8);
  m.bytes = s.i64(9);
  m.downtimeMs = s.i64(10);
  m.totalMs = s.i64(11);
  m.reason = s.text(12);
  m.tracker = s.text(13);
  return m;
}

}  // namespace

AuditLog::AuditLog(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

AuditLog::~AuditLog() { ::sqlite3_close_v2(db_); }

int AuditLog::latestSchemaVersion() { return static_cast<int>(std::size(internal::kSchemaSteps)); }

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = ::sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             nullptr);
  std::unique_ptr<AuditLog> log(new AuditLog(raw, path));
  if (rc != SQLITE_OK) return sqlError(raw, "open audit database", path);
  ::sqlite3_busy_timeout(raw, 5000);
  {
    Stmt wal(raw, "PRAGMA journal_mode=WAL");
    LXMIG_RETURN_IF_ERROR(wal.prepared("journal_mode"));
    if (wal.step() != SQLITE_ROW || wal.text(0) != "wal") return sqlError(raw, "switch to WAL mode", path);
  }
  LXMIG_RETURN_IF_ERROR(exec(
      raw, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=67108864", "set pragmas"));
  LXMIG_RETURN_IF_ERROR(log->migrateSchema().withContext("audit database `" + path + "`"));
  return log;
}

int AuditLog::schemaVersion() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "PRAGMA user_version");
  return s.step() == SQLITE_ROW ? static_cast<int>(s.i64(0)) : -1;
}

Status AuditLog::migrateSchema() {
  int have;
  {
    Stmt s(db_, "PRAGMA user_version");
    if (s.step() != SQLITE_ROW) return sqlError(db_, "read schema version", path_);
    have = static_cast<int>(s.i64(0));
  }
  int latest = latestSchemaVersion();
  if (have > latest)
    return failedPrecondition("schema version " + std::to_string(have) + " is newer than this lxmig knows (" +
                              std::to_string(latest) + "); upgrade lxmig");
  for (int v = have; v < latest; ++v) {
    const auto& step = internal::kSchemaSteps[v];
    LXMIG_RETURN_IF_ERROR(exec(db_, "BEGIN IMMEDIATE", "begin schema step"));
    std::string sql = std::string(step.sql) + "\nPRAGMA user_version=" + std::to_string(v + 1) + ";";
    if (Status st = exec(db_, sql.c_str(), std::string("apply schema step ") + step.name); !st.ok()) {
      (void)exec(db_, "ROLLBACK", "rollback");
      return st;
    }
    LXMIG_RETURN_IF_ERROR(exec(db_, "COMMIT", "commit schema step"));
  }
  return okStatus();
}

Status AuditLog::beginMigration(const MigrationRecord& r) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO migrations(id, container, source, target, mode, reason, started_ms, result) "
         "VALUES(?,?,?,?,?,?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert migration"));
  s.bind(1, r.id).bind(2, r.container).bind(3, r.source).bind(4, r.target).bind(5, r.mode).bind(6, r.reason);
  s.bind(7, r.startedMs).bind(8, r.result.empty() ? std::string("running") : r.result);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record migration", r.id);
  return okStatus();
}

Status AuditLog::finishMigration(const std::string& id, const std::string& result, const std::string& error,
                                 int64_t endedMs, int64_t bytes, int64_t downtimeMs, int64_t totalMs) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE migrations SET result=?, error=?, ended_ms=?, bytes=MAX(bytes, ?), downtime_ms=?, total_ms=? "
         "WHERE id=?");
  LXMIG_RETURN_IF_ERROR(s.prepared("update migration"));
  s.bind(1, result).bind(2, error).bind(3, endedMs).bind(4, bytes).bind(5, downtimeMs).bind(6, totalMs).bind(7, id);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "finish migration", id);
  if (::sqlite3_changes(db_) == 0) return notFound("migration `" + id + "` not in the audit log");
  return okStatus();
}

Result<int64_t> AuditLog::beginPhase(const std::string& migrationId, const std::string& name, int64_t startedMs) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO phases(migration_id, name, started_ms) VALUES(?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert phase"));
  s.bind(1, migrationId).bind(2, name).bind(3, startedMs);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record phase " + name + " of", migrationId);
  return static_cast<int64_t>(::sqlite3_last_insert_rowid(db_));
}

Status AuditLog::endPhase(int64_t phaseId, int64_t endedMs, int64_t bytes, const std::string& result,
                          const std::string& error, const std::string& detail) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE phases SET ended_ms=?, bytes=?, result=?, error=?, detail=? WHERE id=?");
  LXMIG_RETURN_IF_ERROR(s.prepared("update phase"));
  s.bind(1, endedMs).bind(2, bytes).bind(3, result).bind(4, error).bind(5, detail).bind(6, phaseId);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "finish phase", std::to_string(phaseId));
  if (::sqlite3_changes(db_) == 0) return notFound("phase " + std::to_string(phaseId) + " not in the audit log");
  return okStatus();
}

Status AuditLog::addRound(const std::string& migrationId, const RoundRecord& r) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO rounds(migration_id, round, started_ms, duration_ms, scan_us, processes, dirty_pages, "
         "pages_sent, bytes, dirty_rate_bps, send_rate_bps, predicted_downtime_ms, stop) "
         "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert round"));
  s.bind(1, migrationId).bind(2, int64_t{r.round}).bind(3, r.startedMs).bind(4, r.durationMs).bind(5, r.scanUs);
  s.bind(6, r.processes).bind(7, r.dirtyPages).bind(8, r.pagesSent).bind(9, r.bytes).bind(10, r.dirtyRateBps);
  s.bind(11, r.sendRateBps).bind(12, r.predictedDowntimeMs).bind(13, r.stop);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record round of", migrationId);
  return okStatus();
}

Status AuditLog::setMode(const std::string& migrationId, const std::string& mode, const std::string& tracker) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE migrations SET mode=?, tracker=? WHERE id=?");
  LXMIG_RETURN_IF_ERROR(s.prepared("update mode"));
  s.bind(1, mode).bind(2, tracker).bind(3, migrationId);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record mode of", migrationId);
  return okStatus();
}

Result<std::vector<RoundRecord>> AuditLog::roundsOf(const std::string& id) const {
  Stmt s(db_,
         "SELECT round, started_ms, duration_ms, scan_us, processes, dirty_pages, pages_sent, bytes, "
         "dirty_rate_bps, send_rate_bps, predicted_downtime_ms, stop FROM rounds WHERE migration_id=? ORDER BY round");
  LXMIG_RETURN_IF_ERROR(s.prepared("select rounds"));
  s.bind(1, id);
  std::vector<RoundRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    RoundRecord r;
    r.round = static_cast<int>(s.i64(0));
    r.startedMs = s.i64(1);
    r.durationMs = s.i64(2);
    r.scanUs = s.i64(3);
    r.processes = s.i64(4);
    r.dirtyPages = s.i64(5);
    r.pagesSent = s.i64(6);
    r.bytes = s.i64(7);
    r.dirtyRateBps = s.f64(8);
    r.sendRateBps = s.f64(9);
    r.predictedDowntimeMs = s.i64(10);
    r.stop = s.text(11);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return sqlError(db_, "read rounds of", id);
  return out;
}

Status AuditLog::addEvent(const std::string& migrationId, const std::string& level, const std::string& text,
                          int64_t atMs) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO events(migration_id, at_ms, level, text) VALUES(?,?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert event"));
  s.bind(1, migrationId).bind(2, atMs ? atMs : wallNowMs()).bind(3, level).bind(4, text);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record event of", migrationId);
  return okStatus();
}

Result<std::vector<PhaseRecord>> AuditLog::phasesOf(const std::string& id) const {
  Stmt s(db_,
         "SELECT id, migration_id, name, started_ms, COALESCE(ended_ms, 0), bytes, result, error, detail "
         "FROM phases WHERE migration_id=? ORDER BY id");
  LXMIG_RETURN_IF_ERROR(s.prepared("select phases"));
  s.bind(1, id);
  std::vector<PhaseRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    PhaseRecord p;
    p.id = s.i64(0);
    p.migrationId = s.text(1);
    p.name = s.text(2);
    p.startedMs = s.i64(3);
    p.endedMs = s.i64(4);
    p.bytes = s.i64(5);
    p.result = s.text(6);
    p.error = s.text(7);
    p.detail = s.text(8);
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return sqlError(db_, "read phases of", id);
  return out;
}

Result<std::vector<MigrationRecord>> AuditLog::listMigrations(const MigrationFilter& f) const {
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kMigrationColumns +
                    " FROM migrations WHERE (?1 = '' OR container = ?1) AND (?2 = '' OR result = ?2) "
                    "ORDER BY started_ms DESC, rowid DESC LIMIT ?3";
  Stmt s(db_, sql.c_str());
  LXMIG_RETURN_IF_ERROR(s.prepared("select migrations"));
  s.bind(1, f.container).bind(2, f.result).bind(3, static_cast<int64_t>(f.limit > 0 ? f.limit : -1));
  std::vector<MigrationRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(readMigration(s));
  if (rc != SQLITE_DONE) return sqlError(db_, "list migrations", path_);
  for (auto& m : out) {
    LXMIG_ASSIGN_OR_RETURN(m.phases, phasesOf(m.id));
  }
  return out;
}

Result<MigrationRecord> AuditLog::getMigration(const std::string& id) const {
  if (id.empty()) return invalidArgument("empty migration id");
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kMigrationColumns +
                    " FROM migrations WHERE id = ?1 OR (length(?1) >= 4 AND substr(id, 1, length(?1)) = ?1) "
                    "ORDER BY (id = ?1) DESC LIMIT 2";
  Stmt s(db_, sql.c_str());
  LXMIG_RETURN_IF_ERROR(s.prepared("select migration"));
  s.bind(1, id);
  std::vector<MigrationRecord> found;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) found.push_back(readMigration(s));
  if (rc != SQLITE_DONE) return sqlError(db_, "read migration", id);
  if (found.empty()) return notFound("no migration `" + id + "` in the audit log");
  if (found.size() > 1 && found[0].id != id) return invalidArgument("migration id prefix `" + id + "` is ambiguous");
  MigrationRecord m = std::move(found[0]);
  LXMIG_ASSIGN_OR_RETURN(m.phases, phasesOf(m.id));
  LXMIG_ASSIGN_OR_RETURN(m.rounds, roundsOf(m.id));
  return m;
}

Result<std::vector<Event>> AuditLog::events(const std::string& migrationId) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT at_ms, level, text FROM events WHERE migration_id=? ORDER BY id");
  LXMIG_RETURN_IF_ERROR(s.prepared("select events"));
  s.bind(1, migrationId);
  std::vector<Event> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.i64(0), s.text(1), s.text(2)});
  if (rc != SQLITE_DONE) return sqlError(db_, "read events of", migrationId);
  return out;
}

Status AuditLog::addNodeEvent(const NodeEvent& e) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO node_events(at_ms, level, kind, peer, text) VALUES(?,?,?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert node event"));
  s.bind(1, e.atMs ? e.atMs : wallNowMs()).bind(2, e.level).bind(3, e.kind).bind(4, e.peer).bind(5, e.text);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record node event", e.kind);
  return okStatus();
}

Result<std::vector<NodeEvent>> AuditLog::nodeEvents(int limit) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT at_ms, level, kind, peer, text FROM node_events ORDER BY id DESC LIMIT ?");
  LXMIG_RETURN_IF_ERROR(s.prepared("select node events"));
  s.bind(1, int64_t{limit});
  std::vector<NodeEvent> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.i64(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  if (rc != SQLITE_DONE) return sqlError(db_, "read node events", "");
  return out;
}

Status AuditLog::addDecision(const DecisionRecord& d) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO decisions(at_ms, container, from_node, to_node, action, reason, score_before, score_after, "
         "migration_id) VALUES(?,?,?,?,?,?,?,?,?)");
  LXMIG_RETURN_IF_ERROR(s.prepared("insert decision"));
  s.bind(1, d.atMs ? d.atMs : wallNowMs()).bind(2, d.container).bind(3, d.fromNode).bind(4, d.toNode);
  s.bind(5, d.action).bind(6, d.reason).bind(9, d.migrationId);
  if (d.scoreBefore) s.bind(7, *d.scoreBefore);
  else s.bindNull(7);
  if (d.scoreAfter) s.bind(8, *d.scoreAfter);
  else s.bindNull(8);
  if (s.step() != SQLITE_DONE) return sqlError(db_, "record decision about", d.container);
  return okStatus();
}

Result<AuditLog::Pruned> AuditLog::prune(int64_t beforeMs, int batch) {
  std::lock_guard lock(mu_);
  LXMIG_RETURN_IF_ERROR(exec(db_, "BEGIN IMMEDIATE", "begin pruning"));
  Pruned out;
  // Phases, rounds and events go with their migration (ON DELETE CASCADE).
  const std::pair<const char*, int64_t Pruned::*> steps[] = {
      {"DELETE FROM migrations WHERE id IN (SELECT id FROM migrations WHERE started_ms < ?1 AND "
       "ended_ms IS NOT NULL AND ended_ms < ?1 AND result != 'running' LIMIT ?2)",
       &Pruned::migrations},
      {"DELETE FROM node_events WHERE id IN (SELECT id FROM node_events WHERE at_ms < ?1 LIMIT ?2)",
       &Pruned::nodeEvents},
      {"DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE at_ms < ?1 LIMIT ?2)", &Pruned::decisions},
  };
  for (const auto& [sql, field] : steps) {
    Stmt s(db_, sql);
    Status st = s.prepared("prune");
    if (st.ok()) {
      s.bind(1, beforeMs).bind(2, int64_t{batch});
      if (s.step() != SQLITE_DONE) st = sqlError(db_, "prune the audit", path_);
    }
    if (!st.ok()) {
      (void)exec(db_, "ROLLBACK", "rollback");
      return st;
    }
    out.*field = ::sqlite3_changes(db_);
  }
  LXMIG_RETURN_IF_ERROR(exec(db_, "COMMIT", "commit pruning"));
  return out;
}

Result<int> AuditLog::failInterrupted(int64_t nowMs) {
  std::lock_guard lock(mu_);
  LXMIG_RETURN_IF_ERROR(exec(db_, "BEGIN IMMEDIATE", "begin"));
  Stmt p(db_,
         "UPDATE phases SET result='interrupted', ended_ms=?, error='agent stopped during this phase' "
         "WHERE ended_ms IS NULL");
  p.bind(1, nowMs);
  Stmt m(db_,
         "UPDATE migrations SET result='interrupted', ended_ms=?, "
         "error=CASE WHEN error='' THEN 'agent stopped during the migration' ELSE error END "
         "WHERE result='running'");
  m.bind(1, nowMs);
  if (Status st = p.prepared("interrupt phases"); !st.ok() || p.step() != SQLITE_DONE) {
    (void)exec(db_, "ROLLBACK", "rollback");
    return st.ok() ? sqlError(db_, "mark phases interrupted", path_) : st;
  }
  if (Status st = m.prepared("interrupt migrations"); !st.ok() || m.step() != SQLITE_DONE) {
    (void)exec(db_, "ROLLBACK", "rollback");
    return st.ok() ? sqlError(db_, "mark migrations interrupted", path_) : st;
  }
  int n = ::sqlite3_changes(db_);
  LXMIG_RETURN_IF_ERROR(exec(db_, "COMMIT", "commit"));
  return n;
}

}  // namespace lxmig::store
