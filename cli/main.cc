// lxmig: the operator's command line. Each verb lives in commands/; this
// file puts them together behind the global options.
#include <CLI/CLI.hpp>

#include "client.h"
#include "command_line.h"
#include "commands/command.h"
#include "lxmig/base/log.h"
#include "lxmig/node/doctor.h"

using namespace lxmig;
using namespace lxmig::cli;

int main(int argc, char** argv) {
  log::setProgram("lxmig");
  node::preferLxmigCriu();
  CLI::App app{"lxmig: live migration of LXC containers between nodes"};
  app.require_subcommand(1);
  app.fallthrough(true);
  Globals g;
  app.add_option("--node", g.node, "node to act on (default: where the container runs / the local agent)");
  app.add_option("--socket", g.socket, "local agent socket")->envname("LXMIG_SOCKET");
  app.add_option("--cluster", g.cluster, "cluster inventory file");
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_flag("-q,--quiet", g.quiet, "no progress output");
  app.set_version_flag("--version", std::string("lxmig ") + LXMIG_VERSION);
  const Verb verbs[] = {addDoctor(app),  addTestbed(app),   addRun(app),    addPs(app),    addRm(app),
                        addExec(app),    addMigrate(app),   addCancel(app), addFw(app),    addAudit(app),
                        addNodes(app),   addRebalance(app), addDrain(app),  addPin(app),   addUnpin(app),
                        addDevices(app), addGroups(app),    addAdopt(app),  addMerge(app), addCluster(app)};

  if (auto rc = parseCommandLine(app, argc, argv)) return *rc;
  if (g.cluster.empty()) g.cluster = defaultClusterFile();
  Connector conn(g.socket, g.cluster);
  for (const auto& v : verbs)
    if (v.command->parsed()) return v.run(g, conn);
  return 0;
}
