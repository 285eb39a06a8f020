#include "output/errors.h"

#include <nlohmann/json.hpp>

#include "lxmig/base/grammar.h"

namespace lxmig::cli {
namespace {

std::string joined(const std::string& what, const std::string& message) {
  return what.empty() ? message : what + ": " + message;
}

// For a terminal: a refusal quotes process names and a peer's words, so
// their control characters are shown as \xNN (grammar.h printable); the
// message's own line breaks (one line per reason) stay.
std::string shownLines(const std::string& text) {
  std::string out;
  size_t from = 0;
  for (size_t nl; (nl = text.find('\n', from)) != std::string::npos; from = nl + 1)
    out += printable(std::string_view(text).substr(from, nl - from)) + "\n";
  return out + printable(std::string_view(text).substr(from));
}

// Invalid UTF-8 (a name from a peer) replaced, never thrown on.
std::string oneLine(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string errorLine(const std::string& what, const std::string& message, int code, bool json) {
  if (!json) return "lxmig: " + shownLines(joined(what, message));
  return oneLine({{"error", joined(what, message)}, {"code", code}});
}

std::string warningLine(const std::string& what, const std::string& message, bool json) {
  if (!json) return "lxmig: warning: " + shownLines(joined(what, message));
  return oneLine({{"warning", joined(what, message)}});
}

}  // namespace lxmig::cli
