// A migration's report (v1::MigrationReport) and its rows in the audit
// (store::MigrationRecord): one mapping each way, so that the report a
// migration returns and the one `lxmig audit show` reads back agree.
#pragma once

#include "lxmig/store/audit_log.h"
#include "lxmig/v1/migration.pb.h"

namespace lxmig::migration {

store::RoundRecord toRecord(const v1::RoundReport& r);
v1::RoundReport fromRecord(const store::RoundRecord& r);
// Phases and rounds included; events are not part of the record.
v1::MigrationReport fromRecord(const store::MigrationRecord& m);

}  // namespace lxmig::migration
