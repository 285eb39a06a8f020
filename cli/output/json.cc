#include "output/json.h"

#include <iostream>

namespace lxmig::cli {

void printJson(const nlohmann::json& j, int indent) { std::cout << j.dump(indent) << "\n"; }

}  // namespace lxmig::cli
