#include "commands/command.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "command_line.h"

namespace lxmig::cli {

Verb containerVerb(CLI::App& app, const std::string& verb, const std::string& description, ContainerRun run) {
  auto* cmd = app.add_subcommand(verb, description);
  auto name = std::make_shared<std::string>();
  cmd->add_option("name", *name, "container name")->required();
  auto locateAndRun = [verb, name, run](const Globals& g, Connector& conn) {
    auto node = conn.nodeOf(*name, g.node);
    if (!node.ok()) return fail(verb + " " + *name, node.status());
    return run(g, conn, *name, *node);
  };
  return {cmd, locateAndRun};
}

int fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "lxmig: %s%s%s\n", what.c_str(), what.empty() ? "" : ": ", st.message().c_str());
  switch (st.code()) {
    case Code::kInvalidArgument:
      return kUsageError;
    case Code::kUnimplemented:
      return 3;
    default:
      return 1;
  }
}

std::string localHostName() {
  char host[256] = "local";
  ::gethostname(host, sizeof host);
  return host;
}

}  // namespace lxmig::cli
