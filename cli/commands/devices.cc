// `lxmig devices NAME`: the device nodes a container uses beyond the
// standard ones, and where each was seen (a target must offer them).
#include <cstdio>
#include <iostream>

#include "cluster_load.h"
#include "commands/command.h"
#include "manual.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

int devices(const Globals& g, Connector& conn, const std::string& name, const std::string& node) {
  v1::DevicesRequest rq;
  rq.set_node(node);
  rq.set_container(name);
  auto rp = call(conn, node, &v1::Agent::Stub::Devices, rq, 30);
  if (!rp.ok()) return fail("devices " + name, rp.status());
  if (g.json) {
    nlohmann::json j = {{"container", name}, {"node", rp->node()}, {"devices", nlohmann::json::array()}};
    for (const auto& d : rp->needed())
      j["devices"].push_back({{"type", d.type()},
                              {"major", d.dev_major()},
                              {"minor", d.dev_minor()},
                              {"path", d.path()},
                              {"host_path", d.host_path()},
                              {"seen", std::vector<std::string>(d.seen().begin(), d.seen().end())}});
    printJson(j);
    return 0;
  }
  Table table("%-12s %-20s %s\n");
  if (rp->needed().empty())
    std::printf("%s on %s needs no devices beyond the standard ones\n", name.c_str(), rp->node().c_str());
  else std::cout << table.row({"DEVICE", "PATH", "SEEN"});
  for (const auto& d : rp->needed()) {
    std::string seen;
    for (const auto& x : d.seen()) seen += (seen.empty() ? "" : "; ") + x;
    std::cout << table.row({deviceId(d), d.path().empty() ? "-" : d.path(), seen});
  }
  return 0;
}

}  // namespace

Verb addDevices(CLI::App& app) {
  Verb v = containerVerb(app, "devices", "the devices a container needs, and where each was seen", devices);
  withExamples(v.command, {"lxmig devices gpu-job", "lxmig --json devices gpu-job"});
  return v;
}

}  // namespace lxmig::cli
