// The lines errors and warnings are on stderr: "lxmig: WHAT: message", or
// with --json one JSON object per line, so that a script reads stderr as it
// reads stdout:
//   {"error": "rm web: no container `web` on any node", "code": 1}
//   {"warning": "ps: unreachable node n3"}
#pragma once

#include <string>

namespace lxmig::cli {

// Without the newline; `what` may be empty.
std::string errorLine(const std::string& what, const std::string& message, int code, bool json);
std::string warningLine(const std::string& what, const std::string& message, bool json);

}  // namespace lxmig::cli
