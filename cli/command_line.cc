#include "command_line.h"

#include <string>
#include <vector>

namespace lxmig::cli {

std::optional<int> parseCommandLine(CLI::App& app, int argc, const char* const* argv, std::ostream& out,
                                    std::ostream& err) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    if (!app.get_subcommands().empty()) {
      app.exit(e, out, err);
      return kUsageError;
    }
    // No verb: CLI11 complains that one is required even when a word was
    // given in its place, or a flag it does not know.
    const std::vector<std::string> extra = app.remaining();
    for (const auto& word : extra)
      if (word.empty() || word[0] != '-') {
        err << "lxmig: unknown command `" << word << "` (see lxmig --help)\n";
        return kUsageError;
      }
    if (!extra.empty()) app.exit(CLI::ExtrasError(extra), out, err);
    else if (dynamic_cast<const CLI::RequiredError*>(&e)) err << app.help();
    else app.exit(e, out, err);
    return kUsageError;
  }
}

std::string usageMessage(const std::string& err) {
  std::string line = err.substr(0, err.find('\n'));
  if (line.rfind("lxmig: ", 0) == 0) line = line.substr(7);
  if (err.find("\nUsage: ") != std::string::npos || line.empty()) return "no command given (see lxmig --help)";
  return line;
}

}  // namespace lxmig::cli
