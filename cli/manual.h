// Manual pages from the command line's own definition, so they cannot drift
// from `--help`: lxmig(1) lists the verbs, lxmig-VERB(1) has a verb's
// synopsis, arguments, options, its subcommands (`fw add`, `audit query`),
// the global options, the exit status and the examples the verb's help
// ends with (its footer, "Examples:" then one indented command a line).
// `lxmig __man DIR` (main.cc) writes them at build time; the install puts
// them in share/man/man1.
//
//   for (const auto& page : manualPages(app, "0.9.0"))
//     writeFile(dir + "/" + page.file, page.roff);
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace lxmig::cli {

struct ManualPage {
  std::string file;  // "lxmig.1", "lxmig-migrate.1"
  std::string roff;
};

// One page for `app` and one per visible verb (hidden ones have no
// description); `version` goes into the page footer.
std::vector<ManualPage> manualPages(CLI::App& app, const std::string& version);

// The footer that ends a verb's help and fills its EXAMPLES section:
// "Examples:" and each line indented by two spaces. Returns `cmd`.
CLI::App* withExamples(CLI::App* cmd, const std::vector<std::string>& lines);

}  // namespace lxmig::cli
