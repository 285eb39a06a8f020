// Audit queries (store::AuditQuery, mergeRows): whatever SQL an operator or
// a peer sends, a query only reads. On a small audit database written once,
// every input runs as a query and as a merge statement, with short limits;
// afterwards the database file holds the same bytes, a query returns at most
// its row cap, and a refusal or error is one line.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/base/files.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/store/audit_query.h"

namespace {

struct Db {
  std::string dir, path, bytes;
  std::unique_ptr<lxmig::store::AuditQuery> query;
  Db() = default;
  Db(Db&&) = default;
  // libFuzzer ends a run with exit(): the database's directory goes with it.
  ~Db() {
    query.reset();
    if (!dir.empty()) (void)lxmig::removeTree(dir);
  }
};

Db& db() {
  static Db d = [] {
    Db x;
    char tmpl[] = "/tmp/lxmig-fuzz-audit-XXXXXX";
    x.dir = ::mkdtemp(tmpl);
    x.path = x.dir + "/audit.db";
    {
      auto log = lxmig::store::AuditLog::open(x.path);
      LXMIG_FUZZ_CHECK(log.ok());
      lxmig::store::MigrationRecord m;
      m.id = "m1";
      m.container = "web";
      m.source = "n1";
      m.target = "n2";
      m.mode = "pre-copy";
      m.startedMs = 1000;
      LXMIG_FUZZ_CHECK((*log)->beginMigration(m).ok());
      LXMIG_FUZZ_CHECK((*log)->finishMigration("m1", "committed", "", 3000, 4096, 120, 2000).ok());
      LXMIG_FUZZ_CHECK((*log)->addEvent("m1", "warn", "a warning", 1500).ok());
    }
    auto text = lxmig::readFile(x.path);
    LXMIG_FUZZ_CHECK(text.ok());
    x.bytes = *text;
    auto q = lxmig::store::AuditQuery::open(x.path);
    LXMIG_FUZZ_CHECK(q.ok());
    x.query = std::move(*q);
    return x;
  }();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Db& d = db();
  const std::string sql(reinterpret_cast<const char*>(data), size);
  lxmig::store::QueryLimits limits;
  limits.timeoutMs = 50;
  limits.maxRows = 20;
  auto r = d.query->run(sql, limits);
  if (r.ok()) {
    LXMIG_FUZZ_CHECK(r->rows.size() <= limits.maxRows);
    for (const auto& row : r->rows) LXMIG_FUZZ_CHECK(row.size() == r->columns.size());
    auto merged = lxmig::store::mergeRows({{"n1", *r}, {"n2", *r}}, sql, limits);
    if (merged.ok()) LXMIG_FUZZ_CHECK(merged->rows.size() <= limits.maxRows);
  } else {
    LXMIG_FUZZ_CHECK(r.status().message().find('\n') == std::string::npos ||
                     r.status().message().rfind("SQL: ", 0) == 0);  // SQLite's own text may span lines
  }
  auto now = lxmig::readFile(d.path);
  LXMIG_FUZZ_CHECK(now.ok() && *now == d.bytes);
  return 0;
}
