#include "sqlite_util.h"

namespace lxmig::store {

Status sqlError(sqlite3* db, std::string_view what, std::string_view object) {
  std::string msg(what);
  if (!object.empty()) msg += " `" + std::string(object) + "`";
  msg += ": ";
  msg += db ? ::sqlite3_errmsg(db) : "out of memory";
  int rc = db ? ::sqlite3_extended_errcode(db) : SQLITE_NOMEM;
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return {Code::kResourceExhausted, msg};
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return {Code::kUnavailable, msg};
    case SQLITE_CONSTRAINT:
      return {Code::kAlreadyExists, msg};
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return {Code::kPermissionDenied, msg};
    default:
      return {Code::kInternal, msg};
  }
}

Status exec(sqlite3* db, const char* sql, std::string_view what) {
  char* err = nullptr;
  if (::sqlite3_exec(db, sql, nullptr, nullptr, &err) == SQLITE_OK) return okStatus();
  Status st = sqlError(db, what, "");
  ::sqlite3_free(err);
  return st;
}

}  // namespace lxmig::store
