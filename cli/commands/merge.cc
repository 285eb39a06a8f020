// `lxmig merge A B [...] --name N`: continuing the processes of several
// containers in one is not implemented yet. The verb exists because
// `lxmig groups` and `lxmig migrate` name it as the way to make a group that
// spans containers movable; it says so and exits 3 (docs/architecture.md,
// "Adopt and merge", says what is missing).
#include "commands/command.h"

namespace lxmig::cli {

Verb addMerge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "continue the processes of several containers in one (not implemented yet)");
  auto names = std::make_shared<std::vector<std::string>>();
  auto into = std::make_shared<std::string>();
  cmd->add_option("containers", *names, "the containers to merge")->required()->expected(2, 64);
  cmd->add_option("--name", *into, "the merged container's name")->required();
  return {cmd, [names, into](const Globals&, Connector&) {
            return fail("merge", unimplemented("not implemented yet: containers that share IPC cannot be merged by "
                                               "lxmig; start their processes in one container (lxmig run) instead"));
          }};
}

}  // namespace lxmig::cli
