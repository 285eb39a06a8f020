#include "output/errors.h"

#include <nlohmann/json.hpp>

namespace lxmig::cli {
namespace {

std::string joined(const std::string& what, const std::string& message) {
  return what.empty() ? message : what + ": " + message;
}

// Invalid UTF-8 (a name from a peer) replaced, never thrown on.
std::string oneLine(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string errorLine(const std::string& what, const std::string& message, int code, bool json) {
  if (!json) return "lxmig: " + joined(what, message);
  return oneLine({{"error", joined(what, message)}, {"code", code}});
}

std::string warningLine(const std::string& what, const std::string& message, bool json) {
  if (!json) return "lxmig: warning: " + joined(what, message);
  return oneLine({{"warning", joined(what, message)}});
}

}  // namespace lxmig::cli
