// Rows of an audit query (lxmig/store/audit_query.h): from an agent's
// reply, and printed as a table, CSV (RFC 4180) or JSON.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "lxmig/store/audit_query.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::cli {

store::Rows rowsFromReply(const v1::AuditQueryReply& r);

// Columns padded to their widest value (at most 60 characters shown).
void printRowsTable(std::ostream& out, const store::Rows& rows);
void printRowsCsv(std::ostream& out, const store::Rows& rows);
// {"columns": [...], "rows": [[...], ...], "truncated": bool}; values keep
// their type (NULL is null).
nlohmann::json rowsJson(const store::Rows& rows);

}  // namespace lxmig::cli
