// The audit store: every migration and each of its phases, in SQLite.
//
// One database per agent, under its state directory, in WAL mode so that
// `lxmig audit` reads while a migration writes. The schema is versioned
// with PRAGMA user_version; open() applies the missing schema steps in
// one transaction each (store/schema/NNNN_name.sql), so an agent of a newer
// version upgrades an older database in place, and refuses a database
// written by a newer version than it knows.
//
//   LXMIG_ASSIGN_OR_RETURN(auto log, store::AuditLog::open(dir + "/audit.db"));
//   LXMIG_RETURN_IF_ERROR(log->beginMigration(rec));
//   LXMIG_ASSIGN_OR_RETURN(int64_t ph, log->beginPhase(rec.id, "dump", nowMs));
//   LXMIG_RETURN_IF_ERROR(log->endPhase(ph, nowMs, bytes, "ok", "", ""));
//   LXMIG_RETURN_IF_ERROR(log->finishMigration(rec.id, "committed", "", ...));
//
// Reading with SQL: lxmig/store/audit_query.h.
//
// All methods are safe to call from several threads (one connection,
// serialised by a mutex; writes are short).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lxmig/base/status.h"

struct sqlite3;

namespace lxmig::store {

struct PhaseRecord {
  int64_t id = 0;
  std::string migrationId;
  std::string name;
  int64_t startedMs = 0;
  int64_t endedMs = 0;  // 0 while running
  int64_t bytes = 0;
  std::string result;  // a v1::PhaseResult's name (lxmig/proto/vocabulary.h)
  std::string error;
  std::string detail;
};

// One pre-copy round (see schema/0002_rounds.sql).
struct RoundRecord {
  int round = 0;
  int64_t startedMs = 0;
  int64_t durationMs = 0;
  int64_t scanUs = 0;
  int64_t processes = 0;
  int64_t dirtyPages = 0;
  int64_t pagesSent = 0;
  int64_t bytes = 0;
  double dirtyRateBps = 0;
  double sendRateBps = 0;
  int64_t predictedDowntimeMs = 0;
  std::string stop;
};
struct MigrationRecord {
  std::string id;
  std::string container;
  std::string source;
  std::string target;
  std::string mode;  // a v1::MigrationMode's name
  int64_t startedMs = 0;
  int64_t endedMs = 0;  // 0 while running
  std::string result;   // a v1::MigrationResult's name (lxmig/proto/vocabulary.h)
  std::string error;
  int64_t bytes = 0;
  int64_t downtimeMs = -1;
  int64_t totalMs = -1;
  std::string reason;
  std::string tracker;              // dirty tracker of a pre-copy migration
  std::vector<PhaseRecord> phases;  // filled by getMigration and listMigrations
  std::vector<RoundRecord> rounds;  // filled by getMigration
};

struct MigrationFilter {
  std::string container;  // empty: all
  std::string result;     // empty: all
  int limit = 50;         // newest first
};

struct Event {
  int64_t atMs = 0;
  std::string level;
  std::string text;
};

// An event of the node itself (schema/0003_node_events.sql).
struct NodeEvent {
  int64_t atMs = 0;
  std::string level;  // info, warn, error
  std::string kind;   // peer-refused, forwarded, ...
  std::string peer;
  std::string text;
};

// What the rebalancer decided about a container (schema/0004_decisions.sql;
// the `decisions` view of audit queries).
struct DecisionRecord {
  int64_t atMs = 0;
  std::string container;
  std::string fromNode;
  std::string toNode;  // "" when it stays
  std::string action;  // move, stay, skip
  std::string reason;
  std::optional<double> scoreBefore, scoreAfter;
  std::string migrationId;  // the move it started, "" when none
};

class AuditLog {
 public:
  // Opens or creates the database at `path` and brings its schema up to
  // date. FailedPrecondition when the file is written by a newer lxmig.
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  int schemaVersion() const;
  static int latestSchemaVersion();

  // AlreadyExists when rec.id is taken.
  Status beginMigration(const MigrationRecord& rec);
  // NotFound when the migration was never begun.
  Status finishMigration(const std::string& id, const std::string& result, const std::string& error, int64_t endedMs,
                         int64_t bytes, int64_t downtimeMs, int64_t totalMs);
  // Returns the phase row id for endPhase.
  Result<int64_t> beginPhase(const std::string& migrationId, const std::string& name, int64_t startedMs);
  Status endPhase(int64_t phaseId, int64_t endedMs, int64_t bytes, const std::string& result, const std::string& error,
                  const std::string& detail);
  Status addRound(const std::string& migrationId, const RoundRecord& r);
  // The mode actually used (a pre-copy falls back to stop-and-copy) and its tracker.
  Status setMode(const std::string& migrationId, const std::string& mode, const std::string& tracker);
  Status addEvent(const std::string& migrationId, const std::string& level, const std::string& text, int64_t atMs = 0);

  // Newest first, each with its phases.
  Result<std::vector<MigrationRecord>> listMigrations(const MigrationFilter& filter) const;
  // `id` may be a unique prefix (at least 4 characters). NotFound when no
  // migration matches, InvalidArgument when the prefix is ambiguous.
  Result<MigrationRecord> getMigration(const std::string& id) const;
  Result<std::vector<Event>> events(const std::string& migrationId) const;
  Status addNodeEvent(const NodeEvent& e);
  // Newest first.
  Result<std::vector<NodeEvent>> nodeEvents(int limit = 100) const;

  Status addDecision(const DecisionRecord& d);

  // Retention: removes, in one short transaction, at most `batch` of each
  // of: finished migrations that ended before `beforeMs` (with their
  // phases, rounds and events), node events and decisions older than it.
  // Call again until it removes nothing; other writers run in between.
  struct Pruned {
    int64_t migrations = 0, nodeEvents = 0, decisions = 0;
    int64_t total() const { return migrations + nodeEvents + decisions; }
  };
  Result<Pruned> prune(int64_t beforeMs, int batch = 500);

  // Marks migrations and phases still "running" (the agent died under
  // them) as "interrupted". Returns how many migrations were touched.
  Result<int> failInterrupted(int64_t nowMs);

 private:
  explicit AuditLog(sqlite3* db, std::string path);
  Status migrateSchema();
  Result<std::vector<PhaseRecord>> phasesOf(const std::string& id) const;
  Result<std::vector<RoundRecord>> roundsOf(const std::string& id) const;

  sqlite3* db_;
  std::string path_;
  mutable std::mutex mu_;
};

}  // namespace lxmig::store
