// `lxmig exec NAME -- COMMAND...`: runs a command inside a container,
// wherever it lives; its output is passed on and its exit code returned.
#include <cstdio>

#include "commands/command.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct ExecOptions {
  std::string name;
  std::vector<std::string> command;
  unsigned timeoutS = 60;
};

int exec(const Globals& g, Connector& conn, const ExecOptions& o) {
  auto where = conn.nodeOf(o.name, g.node);
  if (!where.ok()) return fail("exec " + o.name, where.status());
  v1::ExecRequest rq;
  rq.set_node(*where);
  rq.set_name(o.name);
  rq.set_timeout_ms(o.timeoutS * 1000);
  for (const auto& c : o.command) rq.add_command(c);
  // The agent's own timeout ends the command; this one covers the call.
  auto rp = call(conn, *where, &v1::Agent::Stub::Exec, rq, static_cast<int>(o.timeoutS) + 15);
  if (!rp.ok()) return fail("exec " + o.name, rp.status());
  if (g.json) {
    printJson({{"exit_code", rp->exit_code()}, {"stdout", rp->stdout_data()}, {"stderr", rp->stderr_data()}});
  } else {
    std::fwrite(rp->stdout_data().data(), 1, rp->stdout_data().size(), stdout);
    std::fwrite(rp->stderr_data().data(), 1, rp->stderr_data().size(), stderr);
  }
  return rp->exit_code();
}

}  // namespace

Verb addExec(CLI::App& app) {
  auto* cmd = app.add_subcommand("exec", "run a command inside a container, wherever it lives");
  withExamples(cmd, {"lxmig exec web -- ps -ef", "lxmig exec --timeout 600 db -- pg_dump app > app.sql"});
  auto o = std::make_shared<ExecOptions>();
  cmd->add_option("name", o->name, "container name")->required();
  cmd->add_option("--timeout", o->timeoutS, "seconds");
  cmd->add_option("command", o->command, "command and arguments (after --)")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return exec(g, conn, *o); }};
}

}  // namespace lxmig::cli
