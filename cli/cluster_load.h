// The cluster as the scheduler sees it (lxmig/sched/planner.h), gathered
// from every node's agent (GetNode): `lxmig nodes`, `rebalance`, `drain`
// and `run` without --node.
#pragma once

#include <string>
#include <vector>

#include "client.h"
#include "lxmig/sched/planner.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::cli {

struct ClusterLoad {
  std::vector<sched::NodeLoad> nodes;
  std::vector<sched::ContainerLoad> containers;
  std::vector<v1::NodeInfo> infos;       // as the agents answered
  std::vector<std::string> unreachable;  // "n3: connection refused"
};

// Asks every node of the cluster (the local one when there is no
// inventory); a node that does not answer is listed, not fatal.
ClusterLoad gatherLoad(Connector& conn);

// A device as the scheduler names it: "c 10:229".
std::string deviceId(const v1::Device& d);

// The scheduler's view of one node's answer.
sched::NodeLoad nodeLoad(const v1::NodeInfo& ni);

}  // namespace lxmig::cli
