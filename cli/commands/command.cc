#include "commands/command.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "command_line.h"
#include "lxmig/base/grammar.h"
#include "output/errors.h"

namespace lxmig::cli {

Verb containerVerb(CLI::App& app, const std::string& verb, const std::string& description, ContainerRun run) {
  auto* cmd = app.add_subcommand(verb, description);
  auto name = std::make_shared<std::string>();
  cmd->add_option("name", *name, "container name")->required();
  auto locateAndRun = [verb, name, run](const Globals& g, Connector& conn) {
    // A malformed name is a usage error, before any agent is asked.
    if (Status st = checkContainerName(*name); !st.ok()) return fail(verb, st);
    if (!g.node.empty())
      if (Status st = checkNodeName(g.node); !st.ok()) return fail(verb, st);
    auto node = conn.nodeOf(*name, g.node);
    if (!node.ok()) return fail(verb + " " + *name, node.status());
    return run(g, conn, *name, *node);
  };
  return {cmd, locateAndRun};
}

namespace {
bool jsonErrorsOn = false;
}  // namespace

void setJsonErrors(bool on) { jsonErrorsOn = on; }
bool jsonErrors() { return jsonErrorsOn; }

int exitCodeOf(const Status& st) {
  switch (st.code()) {
    case Code::kOk:
      return 0;
    case Code::kInvalidArgument:
      return kUsageError;
    case Code::kUnimplemented:
      return 3;
    default:
      return 1;
  }
}

int fail(const std::string& what, const Status& st) {
  const int code = exitCodeOf(st) == 0 ? 1 : exitCodeOf(st);
  return failWith(what, st.message(), code);
}

int failWith(const std::string& what, const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", errorLine(what, message, code, jsonErrorsOn).c_str());
  return code;
}

void warn(const std::string& what, const std::string& message) {
  std::fprintf(stderr, "%s\n", warningLine(what, message, jsonErrorsOn).c_str());
}

std::vector<std::string> nodesToAsk(const Globals& g, Connector& conn) {
  std::vector<std::string> names = g.node.empty() ? conn.nodes() : std::vector<std::string>{g.node};
  if (names.empty()) names.push_back("");
  return names;
}

std::string localHostName() {
  char host[256] = "local";
  ::gethostname(host, sizeof host);
  return host;
}

}  // namespace lxmig::cli
