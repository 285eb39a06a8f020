#include "cluster_load.h"

namespace lxmig::cli {

std::string deviceId(const v1::Device& d) {
  return d.type() + " " + std::to_string(d.dev_major()) + ":" + std::to_string(d.dev_minor());
}

sched::NodeLoad nodeLoad(const v1::NodeInfo& ni) {
  sched::NodeLoad n;
  n.name = ni.name();
  n.cpus = ni.cpus() > 0 ? ni.cpus() : 1;
  n.memTotalBytes = ni.mem_total_bytes();
  n.hostCpu = ni.host_cpu();
  n.hostMemBytes = ni.host_memory_bytes();
  for (const auto& d : ni.devices()) {
    n.devices.push_back(deviceId(d));
    if (!d.cls().empty()) n.devices.push_back(d.cls());
  }
  return n;
}

ClusterLoad gatherLoad(Connector& conn) {
  ClusterLoad out;
  std::vector<std::string> names = conn.nodes();
  if (names.empty()) names.push_back("");
  for (const auto& n : names) {
    v1::GetNodeRequest rq;
    rq.set_node(n);
    auto ni = call(conn, n, &v1::Agent::Stub::GetNode, rq, 10);
    if (!ni.ok()) {
      out.unreachable.push_back((n.empty() ? std::string("local node") : n) + ": " + ni.status().message());
      continue;
    }
    out.nodes.push_back(nodeLoad(*ni));
    for (const auto& l : ni->loads()) {
      sched::ContainerLoad c;
      c.name = l.name();
      c.node = ni->name();
      c.memBytes = l.memory_bytes();
      c.cpu = l.cpu();
      c.devices.assign(l.devices().begin(), l.devices().end());
      c.pinned = l.pinned();
      c.lastMoveMs = l.last_move_ms();
      out.containers.push_back(std::move(c));
    }
    out.infos.push_back(std::move(*ni));
  }
  return out;
}

}  // namespace lxmig::cli
