// SQLite helpers private to the store: errors with context, a prepared
// statement that finalizes itself, a connection handle.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>

#include "lxmig/base/status.h"

namespace lxmig::store {

struct SqliteClose {
  void operator()(sqlite3* db) const { ::sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteClose>;

// "what `object`: SQLite's message", with a code that says what kind of
// failure it was (full, busy, constraint, permission, other).
Status sqlError(sqlite3* db, std::string_view what, std::string_view object);

// Runs statements that return no rows.
Status exec(sqlite3* db, const char* sql, std::string_view what);

// A prepared statement that finalizes itself; binds by 1-based index.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = ::sqlite3_prepare_v2(db, sql, -1, &st_, nullptr); }
  ~Stmt() { ::sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status prepared(std::string_view what) const {
    return rc_ == SQLITE_OK ? okStatus() : sqlError(db_, "prepare", what);
  }
  Stmt& bind(int i, const std::string& s) {
    ::sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    ::sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    ::sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Stmt& bindNull(int i) {
    ::sqlite3_bind_null(st_, i);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return ::sqlite3_step(st_); }
  int64_t i64(int col) const { return ::sqlite3_column_int64(st_, col); }
  double f64(int col) const { return ::sqlite3_column_double(st_, col); }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(::sqlite3_column_text(st_, col));
    return p ? std::string(p, ::sqlite3_column_bytes(st_, col)) : std::string();
  }
  sqlite3_stmt* raw() const { return st_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  int rc_;
};

}  // namespace lxmig::store
