// A migration's report as `migrate` and `audit` show it: JSON with the keys
// scripts and tests read (enum values by their names in
// lxmig/proto/vocabulary.h), or text with a table of rounds and of phases.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "lxmig/v1/migration.pb.h"

namespace lxmig::cli {

nlohmann::json reportJson(const v1::MigrationReport& r);
std::string reportText(const v1::MigrationReport& r);
// On stdout: reportJson() indented by 2 when `json`, else reportText().
void printReport(const v1::MigrationReport& r, bool json);

}  // namespace lxmig::cli
