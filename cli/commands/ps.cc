// `lxmig ps`: the containers of every node (or of --node), with the nodes
// that did not answer.
#include <cstdio>
#include <iostream>

#include "commands/command.h"
#include "lxmig/base/files.h"
#include "manual.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

int ps(const Globals& g, Connector& conn) {
  v1::ListContainersRequest rq;
  rq.set_node(g.node);
  rq.set_all_nodes(g.node.empty());
  auto rp = call(conn, g.node, &v1::Agent::Stub::ListContainers, rq, 20);
  if (!rp.ok()) return fail("ps", rp.status());
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : rp->containers())
      arr.push_back({{"name", c.name()},
                     {"node", c.node()},
                     {"state", c.state()},
                     {"ip", c.ip()},
                     {"extra_ips", c.extra_ips()},
                     {"memory_bytes", c.memory_bytes()},
                     {"init_pid", c.init_pid()},
                     {"command", c.command()}});
    printJson({{"containers", arr}, {"unreachable", rp->unreachable()}}, 2);
  } else {
    Table table("%-20s %-8s %-10s %-18s %10s\n");
    std::cout << table.row({"NAME", "NODE", "STATE", "IP", "MEMORY"});
    for (const auto& c : rp->containers())
      // A merged container answers on its own address and on those of the
      // containers merged into it: "10.200.0.12 +2".
      std::cout << table.row({c.name(), c.node(), c.state(),
                              c.ip() + (c.extra_ips().empty() ? "" : " +" + std::to_string(c.extra_ips_size())),
                              humanBytes(c.memory_bytes())});
    for (const auto& u : rp->unreachable()) warn("ps", "unreachable node " + u);
  }
  return rp->unreachable().empty() ? 0 : 1;
}

}  // namespace

Verb addPs(CLI::App& app) {
  return {withExamples(app.add_subcommand("ps", "list containers of all nodes"), {"lxmig ps", "lxmig --json ps"}), ps};
}

}  // namespace lxmig::cli
