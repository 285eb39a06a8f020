// `lxmig run --name X -- COMMAND...`: creates and starts an application
// container on --node, or on the node the scheduler places it on (the
// least loaded node that offers its devices and has room: sched::place),
// which is recorded as a decision in the audit.
#include <cstdio>

#include "args.h"
#include "cluster_load.h"
#include "commands/command.h"
#include "lxmig/base/files.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct RunOptions {
  std::string name;
  std::vector<std::string> command, binds, env, publish, devices;
  bool userns = false;
};

int run(const Globals& g, Connector& conn, const RunOptions& o) {
  v1::RunContainerRequest rq;
  rq.set_node(g.node);
  rq.set_name(o.name);
  rq.set_userns(o.userns);
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
  std::string node = g.node, placedWhy;
  if (node.empty() && conn.nodes().size() > 1) {
    ClusterLoad cl = gatherLoad(conn);
    sched::ContainerLoad newcomer;
    newcomer.name = o.name;
    newcomer.memBytes = uint64_t{64} << 20;  // unknown before it runs: a small container
    for (const auto& d : o.devices) {
      // The device by its path on the nodes: the id of the first node
      // that offers that path.
      const std::string path = d.substr(0, d.find(':'));
      std::string id;
      for (const auto& ni : cl.infos)
        for (const auto& off : ni.devices())
          if (id.empty() && off.path() == path) id = deviceId(off);
      if (id.empty()) return fail("run " + o.name, failedPrecondition("no node offers " + path));
      newcomer.devices.push_back(id);
    }
    sched::Params p;
    p.nowMs = wallMs();
    std::string why;
    node = sched::place(cl.nodes, cl.containers, newcomer, p, &why);
    if (node.empty()) return fail("run " + o.name, failedPrecondition("no node can take it: " + why));
    placedWhy = "placed on the least loaded node that offers its devices and has room";
    rq.set_node(node);
    v1::RecordDecisionsRequest rec;
    v1::Decision* d = rec.add_decisions();
    d->set_at_ms(wallMs());
    d->set_container(o.name);
    d->set_to_node(node);
    d->set_action("place");
    d->set_reason("run: " + placedWhy);
    (void)call(conn, "", &v1::Agent::Stub::RecordDecisions, rec, 10);
  }
  auto ci = call(conn, node, &v1::Agent::Stub::RunContainer, rq, 180);
  if (!ci.ok()) return fail("run " + o.name, ci.status());
  if (g.json) {
    nlohmann::json j = {{"name", ci->name()}, {"node", ci->node()}, {"state", ci->state()}, {"ip", ci->ip()}};
    if (!placedWhy.empty()) j["placed"] = placedWhy;
    printJson(j);
  } else if (!g.quiet) {
    std::printf("%s running on %s at %s%s\n", ci->name().c_str(), ci->node().c_str(), ci->ip().c_str(),
                placedWhy.empty() ? "" : (" (" + placedWhy + ")").c_str());
  }
  return 0;
}

}  // namespace

Verb addRun(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "create and start an application container");
  withExamples(cmd, {"lxmig run --name web --publish 8080 -- python3 -m http.server 8080",
                     "lxmig --node n2 run --name db --bind /srv/db:/var/lib/db -e PGDATA=/var/lib/db -- postgres",
                     "lxmig run --name gpu-job --device gpu=/dev/nvidia0 -- ./train",
                     "lxmig run --name isolated --userns -- sleep infinity"});
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--name", o->name, "container name")->required();
  cmd->add_option("--bind", o->binds, "HOST[:CONTAINER][:rw] bind mount (read-only by default)")
      ->allow_extra_args(false);
  cmd->add_option("-e,--env", o->env, "NAME=value for the workload")->allow_extra_args(false);
  cmd->add_option("--device", o->devices, "/dev/X[:/dev/Y] device node of this node, bound into the container")
      ->allow_extra_args(false);
  cmd->add_option("-p,--publish", o->publish, "PORT[/tcp|udp] open to everyone (a firewall rule of the container)")
      ->allow_extra_args(false);
  cmd->add_flag("--userns", o->userns,
                "a user namespace of its own: root inside is not root on the host (the node's `idmap` range)");
  cmd->add_option("command", o->command, "command and arguments (after --)")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return run(g, conn, *o); }};
}

}  // namespace lxmig::cli
