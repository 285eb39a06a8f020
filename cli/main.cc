// lxmig: the operator's command line. Each verb lives in commands/; this
// file puts them together behind the global options.
#include <CLI/CLI.hpp>
#include <sstream>

#include "client.h"
#include "command_line.h"
#include "commands/command.h"
#include "completion.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/node/doctor.h"
#include "manual.h"

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
  const Verb verbs[] = {addDoctor(app),    addTestbed(app), addRun(app),    addPs(app),     addRm(app),
                        addExec(app),      addMigrate(app), addCancel(app), addWatch(app),  addCheckpoint(app),
                        addRestore(app),   addFw(app),      addAudit(app),  addLogs(app),   addNodes(app),
                        addRebalance(app), addDrain(app),   addPin(app),    addUnpin(app),  addDevices(app),
                        addGroups(app),    addAdopt(app),   addMerge(app),  addCluster(app)};

  // `lxmig __complete WORDS...` (hidden, for scripts/deploy/lxmig.bash): the
  // words that may follow WORDS, one per line (completion.h). Before
  // parsing: the words are a command line being typed, not this one.
  if (argc >= 2 && std::string(argv[1]) == "__complete") {
    Connector conn(std::getenv("LXMIG_SOCKET") ? std::getenv("LXMIG_SOCKET") : g.socket, defaultClusterFile());
    CompletionNames names;
    names.nodes = [&] { return conn.nodes(); };
    names.containers = [&] {
      std::vector<std::string> out;
      v1::ListContainersRequest rq;
      rq.set_all_nodes(true);
      if (auto rp = call(conn, "", &v1::Agent::Stub::ListContainers, rq, 2); rp.ok())
        for (const auto& c : rp->containers()) out.push_back(c.name());
      return out;
    };
    for (const auto& w : completions(app, std::vector<std::string>(argv + 2, argv + argc), names))
      std::printf("%s\n", w.c_str());
    return 0;
  }
  // `lxmig __man DIR` (hidden, run by the build): the manual pages.
  if (argc == 3 && std::string(argv[1]) == "__man") {
    for (const auto& page : manualPages(app, LXMIG_VERSION))
      if (Status st = writeFileAtomic(std::string(argv[2]) + "/" + page.file, page.roff); !st.ok())
        return fail("__man", st);
    return 0;
  }
  // --json anywhere before `--`: errors as JSON too, also those of parsing.
  for (int i = 1; i < argc && std::string(argv[i]) != "--"; ++i)
    if (std::string(argv[i]) == "--json") setJsonErrors(true);
  if (jsonErrors()) {
    std::ostringstream err;
    auto rc = parseCommandLine(app, argc, argv, std::cout, err);
    if (rc && *rc != 0) return failWith("", usageMessage(err.str()), *rc);
    if (rc) return *rc;
  } else if (auto rc = parseCommandLine(app, argc, argv)) {
    return *rc;
  }
  if (g.cluster.empty()) g.cluster = defaultClusterFile();
  Connector conn(g.socket, g.cluster);
  for (const auto& v : verbs)
    if (v.command->parsed()) return v.run(g, conn);
  return 0;
}
