// `lxmig nodes`: each node of the cluster as its agent describes itself;
// a node that does not answer is reported and makes the exit code 1.
#include <cstdio>
#include <iostream>

#include "commands/command.h"
#include "lxmig/base/files.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

int nodes(const Globals& g, Connector& conn, bool devices) {
  auto t = conn.forNode(g.node);
  if (!t.ok()) return fail("nodes", t.status());
  nlohmann::json arr = nlohmann::json::array();
  std::vector<std::string> names = conn.nodes();
  if (names.empty()) names.push_back("");
  Table table("%-10s %-22s %8s %10s %12s\n");
  if (!g.json) std::cout << table.row({"NODE", "ADDRESS", "LOAD1", "CONTAINERS", "MEM FREE"});
  int rc = 0;
  for (const auto& n : names) {
    v1::GetNodeRequest rq;
    rq.set_node(n);
    auto ni = call(*t, &v1::Agent::Stub::GetNode, rq, 10);
    if (!ni.ok()) {
      std::fprintf(stderr, "lxmig: nodes: %s: %s\n", n.c_str(), ni.status().message().c_str());
      rc = 1;
      continue;
    }
    nlohmann::json nj = {{"name", ni->name()},
                         {"address", ni->address()},
                         {"load1", ni->load1()},
                         {"containers", ni->containers()},
                         {"mem_available_bytes", ni->mem_available_bytes()},
                         {"container_subnet", ni->container_subnet()}};
    if (devices) {
      nj["devices"] = nlohmann::json::array();
      for (const auto& d : ni->devices())
        nj["devices"].push_back({{"type", d.type()},
                                 {"major", d.dev_major()},
                                 {"minor", d.dev_minor()},
                                 {"path", d.path()},
                                 {"class", d.cls()}});
    }
    arr.push_back(std::move(nj));
    if (g.json) continue;
    char load[32];
    std::snprintf(load, sizeof load, "%.2f", ni->load1());
    std::cout << table.row(
        {ni->name(), ni->address(), load, std::to_string(ni->containers()), humanBytes(ni->mem_available_bytes())});
    if (devices)
      for (const auto& d : ni->devices())
        std::printf("    %s %u:%u %s%s\n", d.type().c_str(), d.dev_major(), d.dev_minor(), d.path().c_str(),
                    d.cls().empty() ? "" : ("  class " + d.cls()).c_str());
  }
  if (g.json) printJson({{"nodes", arr}}, 2);
  return rc;
}

}  // namespace

Verb addNodes(CLI::App& app) {
  auto* cmd = app.add_subcommand("nodes", "list the cluster's nodes");
  auto devices = std::make_shared<bool>(false);
  cmd->add_flag("--devices", *devices, "also the devices each node offers to containers");
  return {cmd, [devices](const Globals& g, Connector& conn) { return nodes(g, conn, *devices); }};
}

}  // namespace lxmig::cli
