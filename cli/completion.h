// Shell completion from the command line's own definition, so it cannot
// drift from it: `lxmig __complete WORDS...` (main.cc) prints the words that may come
// after WORDS (the verbs and options of the verb reached, the global
// options, or after an option or argument that names a node or a
// container, those names). scripts/deploy/lxmig.bash calls it.
//
//   CompletionNames names{[&] { return conn.nodes(); }, [&] { return containerNames(conn); }};
//   for (const auto& w : completions(app, {"migrate", "web", "--to"}, names)) std::puts(w.c_str());   // n1 n2
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace lxmig::cli {

struct CompletionNames {
  std::function<std::vector<std::string>()> nodes;
  std::function<std::vector<std::string>()> containers;
};

// Options and arguments whose value is a node (`--node`, `--to`, drain's
// `node`) or a container (a verb's `name` argument) are completed with
// those names; hidden verbs (no description) are never offered.
std::vector<std::string> completions(CLI::App& app, const std::vector<std::string>& typed,
                                     const CompletionNames& names);

}  // namespace lxmig::cli
