// `lxmig nodes`: each node of the cluster as its agent describes itself,
// with the scheduler's view (capacity, containers' loads, score);
// a node that does not answer is reported and makes the exit code 1.
#include <cstdio>
#include <iostream>

#include "cluster_load.h"
#include "commands/command.h"
#include "lxmig/base/files.h"
#include "manual.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

int nodes(const Globals& g, Connector& conn, bool devices) {
  ClusterLoad cl = gatherLoad(conn);
  for (const auto& u : cl.unreachable) warn("nodes", u);
  nlohmann::json arr = nlohmann::json::array();
  Table table("%-10s %-22s %6s %10s %10s %6s %6s %6s\n");
  if (!g.json) std::cout << table.row({"NODE", "ADDRESS", "CPUS", "MEMORY", "MEM FREE", "CONT.", "LOAD1", "SCORE"});
  for (size_t k = 0; k < cl.infos.size(); ++k) {
    const v1::NodeInfo& ni = cl.infos[k];
    const sched::NodeLoad& n = cl.nodes[k];
    double cpu = n.hostCpu;
    uint64_t mem = n.hostMemBytes;
    nlohmann::json loads = nlohmann::json::array();
    for (const auto& l : ni.loads()) {
      cpu += l.cpu();
      mem += l.memory_bytes();
      loads.push_back({{"name", l.name()},
                       {"memory_bytes", l.memory_bytes()},
                       {"cpu", l.cpu()},
                       {"devices", l.devices()},
                       {"pinned", l.pinned()},
                       {"last_move_ms", l.last_move_ms()}});
    }
    const double score = sched::score(n, cpu, mem);
    nlohmann::json nj = {{"name", ni.name()},
                         {"address", ni.address()},
                         {"cpus", ni.cpus()},
                         {"mem_total_bytes", ni.mem_total_bytes()},
                         {"mem_available_bytes", ni.mem_available_bytes()},
                         {"host_cpu", ni.host_cpu()},
                         {"host_memory_bytes", ni.host_memory_bytes()},
                         {"load1", ni.load1()},
                         {"containers", ni.containers()},
                         {"score", score},
                         {"loads", loads},
                         {"container_subnet", ni.container_subnet()}};
    if (devices) {
      nj["devices"] = nlohmann::json::array();
      for (const auto& d : ni.devices())
        nj["devices"].push_back({{"type", d.type()},
                                 {"major", d.dev_major()},
                                 {"minor", d.dev_minor()},
                                 {"path", d.path()},
                                 {"class", d.cls()}});
    }
    arr.push_back(std::move(nj));
    if (g.json) continue;
    char load[32], cpus[32], sc[32];
    std::snprintf(load, sizeof load, "%.2f", ni.load1());
    std::snprintf(cpus, sizeof cpus, "%g", ni.cpus());
    std::snprintf(sc, sizeof sc, "%.0f%%", score * 100);
    std::cout << table.row({ni.name(), ni.address(), cpus, humanBytes(ni.mem_total_bytes()),
                            humanBytes(ni.mem_available_bytes()), std::to_string(ni.containers()), load, sc});
    if (devices)
      for (const auto& d : ni.devices())
        std::printf("    %s %u:%u %s%s\n", d.type().c_str(), d.dev_major(), d.dev_minor(), d.path().c_str(),
                    d.cls().empty() ? "" : ("  class " + d.cls()).c_str());
  }
  if (g.json) printJson({{"nodes", arr}, {"unreachable", cl.unreachable}}, 2);
  return cl.unreachable.empty() ? 0 : 1;
}

}  // namespace

Verb addNodes(CLI::App& app) {
  auto* cmd = app.add_subcommand("nodes", "list the cluster's nodes");
  withExamples(cmd, {"lxmig nodes", "lxmig --json nodes"});
  auto devices = std::make_shared<bool>(false);
  cmd->add_flag("--devices", *devices, "also the devices each node offers to containers");
  return {cmd, [devices](const Globals& g, Connector& conn) { return nodes(g, conn, *devices); }};
}

}  // namespace lxmig::cli
