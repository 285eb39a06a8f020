// Read-only SQL over a node's audit: `lxmig audit query`, `audit stats`.
//
// A query runs on a connection of its own, opened read-only, on which the
// stable views are defined (docs/audit.md lists them column by column):
//   migrations, phases, rounds, events, decisions
// They are temporary views that take the tables' names, so a query reads
// the views, never depends on how the tables evolve, and units are in the
// column names (_ms, _us, _bps, bytes). Only reading is allowed: an
// authorizer refuses every action but SELECT, reading, functions (not
// load_extension) and recursive common table expressions; SQLite's
// defensive mode is on and its limits are lowered; a query is stopped at
// its time limit and its rows are capped. Each refusal is one line saying
// what was refused.
//
//   LXMIG_ASSIGN_OR_RETURN(auto q, store::AuditQuery::open(stateDir + "/audit.db"));
//   LXMIG_ASSIGN_OR_RETURN(store::Rows r, q->run("SELECT count(*) FROM migrations", {}));
//
// Besides SQLite's functions, a query may call percentile(X, P) (the P-th
// percentile, 0..100, of X over a group, by linear interpolation) and
// now_ms() (the wall clock in milliseconds since the epoch).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::store {

// One value of a result row, with SQLite's type.
struct Cell {
  enum class Kind { kNull, kInteger, kReal, kText, kBlob };
  Kind kind = Kind::kNull;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // kText and kBlob

  static Cell null() { return {}; }
  static Cell of(int64_t v) { return {Kind::kInteger, v, 0, {}}; }
  static Cell of(double v) { return {Kind::kReal, 0, v, {}}; }
  static Cell of(std::string v) { return {Kind::kText, 0, 0, std::move(v)}; }
  // As text, the way sqlite3 prints it ("" for NULL).
  std::string str() const;
};

struct Rows {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
  // More rows than QueryLimits allowed: the first ones are kept.
  bool truncated = false;
  int64_t elapsedMs = 0;
};

struct QueryLimits {
  int64_t timeoutMs = 2000;
  size_t maxRows = 10000;
  size_t maxBytes = 8 << 20;  // of text and blobs, to keep a reply in one message
  // Bounds a caller (a flag, a peer's request) may ask for.
  static constexpr int64_t kMaxTimeoutMs = 60 * 1000;
  static constexpr size_t kMaxRows = 1000000;
  // InvalidArgument for a limit out of bounds.
  Status check() const;
};

Result<Rows> mergeRows(const std::vector<std::pair<std::string, Rows>>& perNode, const std::string& sql,
                       const QueryLimits& limits);

class AuditQuery {
 public:
  // The database at `path`, read-only (it may be written meanwhile by the
  // agent: WAL). NotFound when there is none.
  static Result<std::unique_ptr<AuditQuery>> open(const std::string& path);
  ~AuditQuery();
  AuditQuery(const AuditQuery&) = delete;
  AuditQuery& operator=(const AuditQuery&) = delete;

  // One statement that only reads. InvalidArgument for a refusal or an SQL
  // error, DeadlineExceeded when stopped at the time limit.
  Result<Rows> run(const std::string& sql, const QueryLimits& limits);

 private:
  struct Guard;
  friend Result<Rows> mergeRows(const std::vector<std::pair<std::string, Rows>>&, const std::string&,
                                const QueryLimits&);
  explicit AuditQuery(std::unique_ptr<Guard> g);
  std::unique_ptr<Guard> guard_;
};

// Rows of several nodes in one: every node's rows with a leading `node`
// column, in the order given. With `sql`, that statement runs on them in
// an in-memory database whose table `rows` holds them (so GROUP BY, ORDER
// BY and LIMIT apply across nodes), under the same guards. (Declared
// above AuditQuery, which lends it its guard.)

// The views, as SQL a `sqlite3 -readonly` session can read in.
std::string auditViews();

}  // namespace lxmig::store
