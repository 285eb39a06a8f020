// `lxmig testbed up|down|status`: the embedded test bed, nodes in network
// namespaces on this machine. scripts/testbed.sh does the work; the CLI
// finds the script and the agent binary it starts.
#include <unistd.h>

#include <cstdlib>

#include "commands/command.h"
#include "lxmig/base/files.h"
#include "manual.h"

namespace lxmig::cli {
namespace {

std::string exeDir() {
  auto dir = programDir();
  return dir.ok() ? *dir : ".";
}

// Installed: <prefix>/share/lxmig/scripts beside <prefix>/bin/lxmig; in a
// build tree: the source's scripts/.
std::string scriptsDir() {
  if (const char* e = std::getenv("LXMIG_SCRIPTS_DIR")) return e;
  const std::string installed = exeDir() + "/../share/lxmig/scripts";
  if (pathExists(installed + "/testbed.sh")) return installed;
  return std::string(LXMIG_SOURCE_DIR) + "/scripts";
}

// Next to this binary when installed, in the build tree's agent/ when built.
std::string lxmigdPath() {
  if (const char* e = std::getenv("LXMIGD")) return e;
  std::string d = exeDir();
  for (const auto& c : {d + "/lxmigd", d + "/../sbin/lxmigd", d + "/../agent/lxmigd"})
    if (pathExists(c)) return c;
  return "lxmigd";
}

struct TestbedOptions {
  CLI::App* up = nullptr;
  CLI::App* down = nullptr;
  CLI::App* status = nullptr;
  int nodes = 2;
  bool etcd = false;
};

int testbed(const Globals& g, const TestbedOptions& o) {
  std::string script = scriptsDir() + "/testbed.sh";
  std::vector<std::string> args = {"bash", script};
  if (o.up->parsed()) {
    args.insert(args.end(), {"up", "--nodes", std::to_string(o.nodes), "--lxmigd", lxmigdPath()});
    if (o.etcd) args.push_back("--etcd");
  } else if (o.down->parsed()) {
    args.push_back("down");
  } else if (o.status->parsed()) {
    args.push_back("status");
    if (g.json) args.push_back("--json");
  }
  // The script makes the test bed's certificates with this lxmig.
  ::setenv("LXMIG_BIN", (exeDir() + "/lxmig").c_str(), 1);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  ::execvp("bash", cargs.data());
  return fail("testbed", Status::fromErrno("exec", script));
}

}  // namespace

Verb addTestbed(CLI::App& app) {
  auto* cmd = app.add_subcommand("testbed", "the embedded test bed: nodes in network namespaces on this machine");
  withExamples(cmd, {"lxmig testbed up --nodes 2", "lxmig testbed status", "lxmig testbed down"});
  cmd->require_subcommand(1);
  auto o = std::make_shared<TestbedOptions>();
  o->up = cmd->add_subcommand("up", "bring the test bed up");
  o->up->add_option("--nodes", o->nodes, "number of nodes")->check(CLI::Range(1, 9));
  o->up->add_flag("--etcd", o->etcd,
                  "an etcd in the client namespace as the cluster store: nodes register there (ttl 3 s) and the "
                  "cluster file lists no peer address");
  o->down = cmd->add_subcommand("down", "remove everything the test bed made");
  o->status = cmd->add_subcommand("status", "show the test bed");
  return {cmd, [o](const Globals& g, Connector&) { return testbed(g, *o); }};
}

}  // namespace lxmig::cli
