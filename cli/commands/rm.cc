// `lxmig rm NAME`: stops and removes a container, wherever it runs.
#include <cstdio>

#include "commands/command.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

int rm(const Globals& g, Connector& conn, const std::string& name, const std::string& node) {
  v1::RemoveContainerRequest rq;
  rq.set_node(node);
  rq.set_name(name);
  if (auto rp = call(conn, node, &v1::Agent::Stub::RemoveContainer, rq, 60); !rp.ok())
    return fail("rm " + name, rp.status());
  if (g.json) printJson({{"name", name}, {"node", node}, {"removed", true}});
  else if (!g.quiet) std::printf("%s removed from %s\n", name.c_str(), node.c_str());
  return 0;
}

}  // namespace

Verb addRm(CLI::App& app) {
  Verb v = containerVerb(app, "rm", "stop and remove a container", rm);
  withExamples(v.command, {"lxmig rm web", "lxmig --node n2 rm web   # the copy on n2, when two run"});
  return v;
}

}  // namespace lxmig::cli
