// `lxmig groups`: the IPC groups of a node, as a table, JSON or Graphviz.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace lxmig::cli {

enum class GroupsFormat { kTable, kJson, kDot };

// Renders a scan in the form of grouping/scan_json.h.
std::string renderGroupsTable(const nlohmann::json& scan);
std::string renderGroupsDot(const nlohmann::json& scan);

}  // namespace lxmig::cli
