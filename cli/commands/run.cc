// `lxmig run --name X -- COMMAND...`: creates and starts an application
// container on --node (or wherever the local agent puts it).
#include <cstdio>

#include "args.h"
#include "commands/command.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct RunOptions {
  std::string name;
  std::vector<std::string> command, binds, env, publish, devices;
};

int run(const Globals& g, Connector& conn, const RunOptions& o) {
  v1::RunContainerRequest rq;
  rq.set_node(g.node);
  rq.set_name(o.name);
  for (const auto& c : o.command) rq.add_command(c);
  for (const auto& p : o.publish) rq.add_publish(p);
  for (const auto& d : o.devices) rq.add_devices(d);
  for (const auto& e : o.env) {
    if (e.find('=') == std::string::npos)
      return fail("run", invalidArgument("--env wants NAME=value, got `" + e + "`"));
    rq.add_env(e);
  }
  for (const auto& b : o.binds) {
    auto m = parseBind(b);
    if (!m.ok()) return fail("run", m.status());
    *rq.add_binds() = std::move(*m);
  }
  auto ci = call(conn, g.node, &v1::Agent::Stub::RunContainer, rq, 180);
  if (!ci.ok()) return fail("run " + o.name, ci.status());
  if (g.json) printJson({{"name", ci->name()}, {"node", ci->node()}, {"state", ci->state()}, {"ip", ci->ip()}});
  else if (!g.quiet) std::printf("%s running on %s at %s\n", ci->name().c_str(), ci->node().c_str(), ci->ip().c_str());
  return 0;
}

}  // namespace

Verb addRun(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "create and start an application container");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--name", o->name, "container name")->required();
  cmd->add_option("--bind", o->binds, "HOST[:CONTAINER][:rw] bind mount (read-only by default)")
      ->allow_extra_args(false);
  cmd->add_option("-e,--env", o->env, "NAME=value for the workload")->allow_extra_args(false);
  cmd->add_option("--device", o->devices, "/dev/X[:/dev/Y] device node of this node, bound into the container")
      ->allow_extra_args(false);
  cmd->add_option("-p,--publish", o->publish, "PORT[/tcp|udp] open to everyone (a firewall rule of the container)")
      ->allow_extra_args(false);
  cmd->add_option("command", o->command, "command and arguments (after --)")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return run(g, conn, *o); }};
}

}  // namespace lxmig::cli
