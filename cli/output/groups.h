// How `lxmig groups` shows the IPC groups of a node: a table or Graphviz
// (with --json the scan is printed as it came).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lxmig::cli {

// Renders a scan in the form of grouping/scan_json.h.
std::string renderGroupsTable(const nlohmann::json& scan);
std::string renderGroupsDot(const nlohmann::json& scan);

}  // namespace lxmig::cli
