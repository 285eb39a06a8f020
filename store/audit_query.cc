#include "lxmig/store/audit_query.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

#include "sqlite_util.h"

namespace lxmig::store {
namespace {

// The stable schema of audit queries (docs/audit.md). Temporary views are
// searched before the database's own tables, so these names win.
constexpr const char* kViews = R"sql(
CREATE TEMP VIEW migrations AS
  SELECT id AS migration_id, container,
         CASE mode WHEN 'incoming' THEN 'target' WHEN 'adopt' THEN 'local' WHEN 'merge' THEN 'local'
                   ELSE 'source' END AS role,
         source AS source_node, target AS target_node, mode, tracker, reason,
         started_ms, ended_ms, result, error, bytes,
         NULLIF(downtime_ms, -1) AS downtime_ms, NULLIF(total_ms, -1) AS total_ms
  FROM main.migrations;
CREATE TEMP VIEW phases AS
  SELECT migration_id, name AS phase, started_ms, ended_ms, ended_ms - started_ms AS duration_ms,
         bytes, result, error, detail
  FROM main.phases;
CREATE TEMP VIEW rounds AS
  SELECT migration_id, round, started_ms, duration_ms, scan_us, processes, dirty_pages, pages_sent,
         bytes, dirty_rate_bps, send_rate_bps, predicted_downtime_ms, stop AS stop_reason
  FROM main.rounds;
CREATE TEMP VIEW events AS
  SELECT at_ms, level, 'migration' AS kind, migration_id, '' AS peer, text FROM main.events
  UNION ALL
  SELECT at_ms, level, kind, NULL, peer, text FROM main.node_events;
CREATE TEMP VIEW decisions AS
  SELECT at_ms, container, from_node, to_node, action, reason, score_before, score_after, migration_id
  FROM main.decisions;
)sql";

int64_t monoNs() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

int64_t wallMsNow() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

const char* actionName(int action) {
  switch (action) {
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX:
      return "CREATE INDEX";
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE:
      return "CREATE TABLE";
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
      return "CREATE TRIGGER";
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW:
      return "CREATE VIEW";
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_DROP_VTABLE:
      return "DROP";
    case SQLITE_DELETE:
      return "DELETE";
    case SQLITE_INSERT:
      return "INSERT";
    case SQLITE_UPDATE:
      return "UPDATE";
    case SQLITE_TRANSACTION:
      return "a transaction";
    case SQLITE_SAVEPOINT:
      return "SAVEPOINT";
    case SQLITE_ATTACH:
      return "ATTACH";
    case SQLITE_DETACH:
      return "DETACH";
    case SQLITE_ALTER_TABLE:
      return "ALTER TABLE";
    case SQLITE_REINDEX:
      return "REINDEX";
    case SQLITE_ANALYZE:
      return "ANALYZE";
    case SQLITE_CREATE_VTABLE:
      return "CREATE VIRTUAL TABLE";
    default:
      return "this statement";
  }
}

// Pragmas that only describe the schema.
bool introspectionPragma(const char* name) {
  static const std::set<std::string> kAllowed = {"table_info", "table_xinfo", "index_list",
                                                 "index_info", "index_xinfo", "foreign_key_list"};
  return name && kAllowed.count(name) > 0;
}

// percentile(X, P): the P-th percentile of X over a group, by linear
// interpolation between the two nearest ranks (as numpy's default).
struct Percentile {
  std::vector<double> values;
  double p = -1;
  bool bad = false;
};

void percentileStep(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto** slot = static_cast<Percentile**>(::sqlite3_aggregate_context(ctx, sizeof(Percentile*)));
  if (!slot) return ::sqlite3_result_error_nomem(ctx);
  if (!*slot) *slot = new Percentile;
  Percentile& a = **slot;
  if (argc != 2) return;
  const double p = ::sqlite3_value_double(argv[1]);
  if (::sqlite3_value_type(argv[1]) == SQLITE_NULL || !(p >= 0 && p <= 100)) a.bad = true;
  a.p = p;
  if (::sqlite3_value_type(argv[0]) != SQLITE_NULL) a.values.push_back(::sqlite3_value_double(argv[0]));
}

void percentileFinal(sqlite3_context* ctx) {
  auto** slot = static_cast<Percentile**>(::sqlite3_aggregate_context(ctx, 0));
  if (!slot || !*slot) return ::sqlite3_result_null(ctx);
  std::unique_ptr<Percentile> a(*slot);
  *slot = nullptr;
  if (a->bad) return ::sqlite3_result_error(ctx, "percentile(X, P): P must be a number from 0 to 100", -1);
  if (a->values.empty()) return ::sqlite3_result_null(ctx);
  std::sort(a->values.begin(), a->values.end());
  const double rank = a->p / 100.0 * static_cast<double>(a->values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, a->values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  ::sqlite3_result_double(ctx, a->values[lo] + (a->values[hi] - a->values[lo]) * frac);
}

void nowMs(sqlite3_context* ctx, int, sqlite3_value**) { ::sqlite3_result_int64(ctx, wallMsNow()); }

std::string quoteIdent(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

bool onlyBlank(const char* p) {
  for (; p && *p; ++p)
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') return false;
  return true;
}

}  // namespace

std::string Cell::str() const {
  switch (kind) {
    case Kind::kNull:
      return "";
    case Kind::kInteger:
      return std::to_string(integer);
    case Kind::kReal: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.15g", real);
      std::string s = buf;
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // as sqlite3 prints a whole REAL
      return s;
    }
    case Kind::kText:
    case Kind::kBlob:
      return text;
  }
  return "";
}

Status QueryLimits::check() const {
  if (timeoutMs < 1 || timeoutMs > kMaxTimeoutMs)
    return invalidArgument("query time limit " + std::to_string(timeoutMs) + " ms out of range (1.." +
                           std::to_string(kMaxTimeoutMs) + ")");
  if (maxRows < 1 || maxRows > kMaxRows)
    return invalidArgument("row limit " + std::to_string(maxRows) + " out of range (1.." + std::to_string(kMaxRows) +
                           ")");
  return okStatus();
}

// A name from the statement as a refusal shows it: quoted names may hold
// any byte, and a refusal is one line (control bytes become '?', at most
// 64 bytes).
std::string shownName(const char* name) {
  if (!name) return "?";
  std::string out;
  for (const char* p = name; *p && out.size() < 64; ++p)
    out += static_cast<unsigned char>(*p) < 0x20 || *p == 0x7f ? '?' : *p;
  return out;
}

// One connection and what guards it: an authorizer that lets only reading
// through (remembering what it refused, for the message), a progress
// handler that stops a query at its deadline, lowered limits.
struct AuditQuery::Guard {
  SqliteDb db;
  std::string refused;
  int64_t deadlineNs = 0;
  bool timedOut = false;
  bool internalWrite = false;

  static Result<std::unique_ptr<Guard>> open(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    int rc = ::sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    auto g = std::make_unique<Guard>();
    g->db.reset(raw);
    if (rc != SQLITE_OK) return sqlError(raw, "open audit database", path);
    sqlite3* db = raw;
    ::sqlite3_extended_result_codes(db, 1);
    ::sqlite3_busy_timeout(db, 500);
    ::sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    ::sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    ::sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    ::sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, nullptr);
    ::sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, nullptr);
    if (::sqlite3_create_function_v2(db, "percentile", 2, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr, nullptr,
                                     percentileStep, percentileFinal, nullptr) != SQLITE_OK ||
        ::sqlite3_create_function_v2(db, "now_ms", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr, nowMs, nullptr, nullptr,
                                     nullptr) != SQLITE_OK)
      return sqlError(db, "register query functions on", path);
    return g;
  }

  // From here on only reading: limits down, authorizer and deadline on.
  void arm() {
    sqlite3* d = db.get();
    ::sqlite3_limit(d, SQLITE_LIMIT_LENGTH, 1 << 20);
    ::sqlite3_limit(d, SQLITE_LIMIT_SQL_LENGTH, 64 << 10);
    ::sqlite3_limit(d, SQLITE_LIMIT_COLUMN, 200);
    ::sqlite3_limit(d, SQLITE_LIMIT_EXPR_DEPTH, 100);
    ::sqlite3_limit(d, SQLITE_LIMIT_COMPOUND_SELECT, 20);
    ::sqlite3_limit(d, SQLITE_LIMIT_VDBE_OP, 100000);
    ::sqlite3_limit(d, SQLITE_LIMIT_FUNCTION_ARG, 8);
    ::sqlite3_limit(d, SQLITE_LIMIT_ATTACHED, 0);
    ::sqlite3_limit(d, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000);
    ::sqlite3_limit(d, SQLITE_LIMIT_VARIABLE_NUMBER, 0);
    ::sqlite3_limit(d, SQLITE_LIMIT_TRIGGER_DEPTH, 1);
    ::sqlite3_limit(d, SQLITE_LIMIT_WORKER_THREADS, 0);
    ::sqlite3_set_authorizer(d, authorize, this);
    ::sqlite3_progress_handler(d, 1000, progress, this);
  }

  static int authorize(void* self, int action, const char* a, const char* b, const char*, const char*) {
    auto* g = static_cast<Guard*>(self);
    switch (action) {
      case SQLITE_SELECT:
      case SQLITE_READ:
      case SQLITE_RECURSIVE:
        return SQLITE_OK;
      case SQLITE_FUNCTION:
        if (b && std::string_view(b) == "load_extension") break;
        return SQLITE_OK;
      case SQLITE_PRAGMA:
        if (introspectionPragma(a)) return SQLITE_OK;
        break;
      default:
        break;
    }
    // Schema changes write SQLite's own tables before the authorizer is
    // asked about the statement itself (CREATE, DROP, ANALYZE): let the
    // first question pass, so the refusal names the statement; a statement
    // that asked only that is refused after its preparation.
    if ((action == SQLITE_INSERT || action == SQLITE_UPDATE || action == SQLITE_DELETE) && a &&
        std::string_view(a).substr(0, 7) == "sqlite_") {
      g->internalWrite = true;
      return SQLITE_OK;
    }
    if (g->refused.empty()) {
      if (action == SQLITE_FUNCTION) g->refused = "function " + shownName(b);
      else if (action == SQLITE_PRAGMA) g->refused = "PRAGMA " + shownName(a);
      else g->refused = actionName(action);
    }
    return SQLITE_DENY;
  }

  static int progress(void* self) {
    auto* g = static_cast<Guard*>(self);
    if (monoNs() < g->deadlineNs) return 0;
    g->timedOut = true;
    return 1;
  }

  Result<Rows> run(const std::string& sql, const QueryLimits& limits) {
    LXMIG_RETURN_IF_ERROR(limits.check());
    sqlite3* d = db.get();
    refused.clear();
    timedOut = false;
    internalWrite = false;
    const int64_t start = monoNs();
    deadlineNs = start + limits.timeoutMs * 1000000;
    if (sql.size() > (64u << 10)) return invalidArgument("refused: longer than 64 KiB");
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc = ::sqlite3_prepare_v2(d, sql.c_str(), static_cast<int>(sql.size()), &raw, &tail);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, ::sqlite3_finalize);
    if (rc != SQLITE_OK) {
      if (::sqlite3_errcode(d) == SQLITE_AUTH)
        return invalidArgument("refused: " + (refused.empty() ? std::string("this statement") : refused) +
                               " is not allowed (audit queries only read)");
      return invalidArgument(std::string("SQL: ") + ::sqlite3_errmsg(d));
    }
    if (!stmt) return invalidArgument("empty statement: nothing to query");
    if (!onlyBlank(tail)) {
      sqlite3_stmt* next = nullptr;
      ::sqlite3_prepare_v2(d, tail, -1, &next, nullptr);
      const bool another = next != nullptr || !refused.empty();
      ::sqlite3_finalize(next);
      if (another) return invalidArgument("refused: one statement per query");
    }
    if (internalWrite || !::sqlite3_stmt_readonly(stmt.get()))
      return invalidArgument("refused: the statement would write (audit queries only read)");
    Rows out;
    const int n = ::sqlite3_column_count(stmt.get());
    for (int i = 0; i < n; ++i) out.columns.emplace_back(::sqlite3_column_name(stmt.get(), i));
    size_t bytes = 0;
    while ((rc = ::sqlite3_step(stmt.get())) == SQLITE_ROW) {
      if (out.rows.size() >= limits.maxRows || bytes > limits.maxBytes) {
        out.truncated = true;
        break;
      }
      std::vector<Cell> row;
      row.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        switch (::sqlite3_column_type(stmt.get(), i)) {
          case SQLITE_INTEGER:
            row.push_back(Cell::of(static_cast<int64_t>(::sqlite3_column_int64(stmt.get(), i))));
            break;
          case SQLITE_FLOAT:
            row.push_back(Cell::of(::sqlite3_column_double(stmt.get(), i)));
            break;
          case SQLITE_NULL:
            row.push_back(Cell::null());
            break;
          default: {
            const bool blob = ::sqlite3_column_type(stmt.get(), i) == SQLITE_BLOB;
            const void* p = blob ? ::sqlite3_column_blob(stmt.get(), i) : ::sqlite3_column_text(stmt.get(), i);
            const int len = ::sqlite3_column_bytes(stmt.get(), i);
            Cell c = Cell::of(std::string(static_cast<const char*>(p), p ? static_cast<size_t>(len) : 0));
            if (blob) c.kind = Cell::Kind::kBlob;
            bytes += c.text.size();
            row.push_back(std::move(c));
          }
        }
      }
      out.rows.push_back(std::move(row));
    }
    out.elapsedMs = (monoNs() - start) / 1000000;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      if (timedOut)
        return Status(Code::kDeadlineExceeded, "stopped after " + std::to_string(out.elapsedMs) +
                                                   " ms: longer than its time limit of " +
                                                   std::to_string(limits.timeoutMs) + " ms");
      return invalidArgument(std::string("SQL: ") + ::sqlite3_errmsg(d));
    }
    return out;
  }
};

AuditQuery::AuditQuery(std::unique_ptr<Guard> g) : guard_(std::move(g)) {}
AuditQuery::~AuditQuery() = default;

Result<std::unique_ptr<AuditQuery>> AuditQuery::open(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) return notFound("no audit database at " + path);
  LXMIG_ASSIGN_OR_RETURN(auto g, Guard::open(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX));
  LXMIG_RETURN_IF_ERROR(exec(g->db.get(), kViews, "define the audit views"));
  g->arm();
  return std::unique_ptr<AuditQuery>(new AuditQuery(std::move(g)));
}

Result<Rows> AuditQuery::run(const std::string& sql, const QueryLimits& limits) { return guard_->run(sql, limits); }

Result<Rows> mergeRows(const std::vector<std::pair<std::string, Rows>>& perNode, const std::string& sql,
                       const QueryLimits& limits) {
  LXMIG_RETURN_IF_ERROR(limits.check());
  Rows all;
  all.columns.push_back("node");
  if (!perNode.empty()) {
    const auto& first = perNode.front().second.columns;
    for (const auto& [node, rows] : perNode)
      if (rows.columns.size() != first.size())
        return failedPrecondition("node " + node + " answered with " + std::to_string(rows.columns.size()) +
                                  " columns, " + perNode.front().first + " with " + std::to_string(first.size()) +
                                  " (agents of different versions?)");
    all.columns.insert(all.columns.end(), first.begin(), first.end());
  }
  for (const auto& [node, rows] : perNode) {
    all.truncated |= rows.truncated;
    for (const auto& r : rows.rows) {
      std::vector<Cell> row;
      row.reserve(r.size() + 1);
      row.push_back(Cell::of(node));
      row.insert(row.end(), r.begin(), r.end());
      all.rows.push_back(std::move(row));
    }
  }
  if (sql.empty()) {
    if (all.rows.size() > limits.maxRows) {
      all.rows.resize(limits.maxRows);
      all.truncated = true;
    }
    return all;
  }
  // The merge: an in-memory database with one table, `rows`.
  LXMIG_ASSIGN_OR_RETURN(auto g, AuditQuery::Guard::open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY));
  sqlite3* d = g->db.get();
  std::string create = "CREATE TABLE rows(", insert = "INSERT INTO rows VALUES(";
  std::set<std::string> seen;
  for (size_t i = 0; i < all.columns.size(); ++i) {
    std::string name = all.columns[i];
    for (int k = 2; !seen.insert(name).second; ++k) name = all.columns[i] + "_" + std::to_string(k);
    create += (i ? ", " : "") + quoteIdent(name);
    insert += i ? ", ?" : "?";
  }
  LXMIG_RETURN_IF_ERROR(exec(d, (create + ")").c_str(), "create the merge table"));
  LXMIG_RETURN_IF_ERROR(exec(d, "BEGIN", "begin the merge"));
  {
    Stmt ins(d, (insert + ")").c_str());
    LXMIG_RETURN_IF_ERROR(ins.prepared("merge rows"));
    for (const auto& row : all.rows) {
      ::sqlite3_reset(ins.raw());
      for (size_t i = 0; i < row.size(); ++i) {
        const int at = static_cast<int>(i) + 1;
        const Cell& c = row[i];
        switch (c.kind) {
          case Cell::Kind::kNull:
            ins.bindNull(at);
            break;
          case Cell::Kind::kInteger:
            ins.bind(at, c.integer);
            break;
          case Cell::Kind::kReal:
            ins.bind(at, c.real);
            break;
          case Cell::Kind::kText:
            ins.bind(at, c.text);
            break;
          case Cell::Kind::kBlob:
            ::sqlite3_bind_blob(ins.raw(), at, c.text.data(), static_cast<int>(c.text.size()), SQLITE_TRANSIENT);
            break;
        }
      }
      if (ins.step() != SQLITE_DONE) return sqlError(d, "merge rows", "");
    }
  }
  LXMIG_RETURN_IF_ERROR(exec(d, "COMMIT", "commit the merge"));
  g->arm();
  LXMIG_ASSIGN_OR_RETURN(Rows merged, g->run(sql, limits));
  merged.truncated |= all.truncated;
  return merged;
}

std::string auditViews() { return std::string(kViews).substr(1); }

}  // namespace lxmig::store
