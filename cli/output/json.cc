#include "output/json.h"

#include <iostream>

namespace lxmig::cli {

// Text from outside (an audit row, a process name) need not be UTF-8: shown
// with U+FFFD, never an exception.
void printJson(const nlohmann::json& j, int indent) {
  std::cout << j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace lxmig::cli
