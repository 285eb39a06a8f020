// JSON on stdout: what --json prints, one document per command.
#pragma once

#include <nlohmann/json.hpp>

namespace lxmig::cli {

// `j` and a newline; `indent` as for nlohmann::json::dump (-1: one line).
void printJson(const nlohmann::json& j, int indent = -1);

}  // namespace lxmig::cli
