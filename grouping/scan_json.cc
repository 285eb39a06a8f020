#include "lxmig/grouping/scan_json.h"

namespace lxmig::grouping {

nlohmann::json toJson(const Scan& scan, const std::vector<Group>& groups, const std::string& node) {
  using nlohmann::json;
  json out = {{"node", node},
              {"duration_ms", scan.durationMs},
              {"processes", scan.processes.size()},
              {"unreadable", scan.unreadable},
              {"groups", json::array()}};
  for (const auto& g : groups) {
    json members = json::array();
    for (pid_t pid : g.members) {
      auto it = scan.processes.find(pid);
      if (it == scan.processes.end()) continue;
      const auto& p = it->second;
      members.push_back({{"pid", p.pid},
                         {"ppid", p.ppid},
                         {"comm", p.comm},
                         {"container", p.container},
                         {"net_sockets", p.netSockets}});
    }
    json edges = json::array();
    for (const auto& e : g.edges)
      edges.push_back({{"kind", e.kind},
                       {"object", e.object},
                       {"path", e.path},
                       {"crosses_container", e.crossesContainer},
                       {"a", {{"pid", e.a.pid}, {"how", e.a.how}}},
                       {"b", {{"pid", e.b.pid}, {"how", e.b.how}}}});
    out["groups"].push_back({{"id", g.id},
                             {"verdict", g.verdict},
                             {"containers", g.containers},
                             {"why", g.why},
                             {"members", members},
                             {"edges", edges}});
  }
  return out;
}

Result<nlohmann::json> scanAndSelect(const Selection& sel, const std::string& node) {
  Scan scan = scanNode({});
  std::vector<Group> chosen;
  if (sel.pid > 0) {
    LXMIG_ASSIGN_OR_RETURN(auto g, groupOf(scan, sel.pid));
    chosen.push_back(std::move(g));
  } else if (!sel.container.empty()) {
    LXMIG_ASSIGN_OR_RETURN(chosen, groupsOfContainer(scan, sel.container));
  } else {
    for (const auto& g : scan.groups) {
      bool containerised = false;
      for (const auto& c : g.containers) containerised |= !c.empty();
      if (sel.all || containerised) chosen.push_back(g);
    }
  }
  return toJson(scan, chosen, node);
}

}  // namespace lxmig::grouping
