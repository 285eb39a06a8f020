// How parsing `lxmig`'s command line ends when no verb is to run: --help
// and --version exit 0; every usage error exits 2, the code of a bad
// argument found later (fail()), so scripts can tell it from a verb that
// failed (1).
//
//   if (std::optional<int> rc = parseCommandLine(app, argc, argv)) return *rc;
//   ... run the verb that was parsed ...
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

namespace lxmig::cli {

inline constexpr int kUsageError = 2;

// Parses argv into `app`, whose subcommands are the verbs. nullopt when a
// verb is to run, else the exit code, with what to say written to `out`
// (help, version) or `err`:
//   an unknown verb   "lxmig: unknown command `x` (see lxmig --help)"
//   no verb           the help
//   anything else     CLI11's message (an unexpected flag, a missing value)
std::optional<int> parseCommandLine(CLI::App& app, int argc, const char* const* argv, std::ostream& out = std::cout,
                                    std::ostream& err = std::cerr);
// What parseCommandLine wrote to `err`, as one line for a JSON error: its
// first line without "lxmig: ", or "no command given" for the help.
std::string usageMessage(const std::string& err);

}  // namespace lxmig::cli
