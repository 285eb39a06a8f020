// The rebalancer's planner: pure, no I/O, simulation-tested
// (tests/unit/sched, tests/bench/rebalance_bench.cc).
//
// A node's score is the mean of its memory and CPU fractions in use (its
// own use plus its containers'); the spread of a cluster is
// (max - min) / max of the scores of the nodes that take work. A plan moves
// whole containers from the most loaded node to the nodes that can take
// them, and keeps to these rules:
//   - hysteresis: it starts only when the spread exceeds `startSpread` and
//     stops once it is at most `stopSpread`;
//   - no overshoot: a move never leaves the target above the source (it
//     stops short of the midpoint), so a move cannot create a new maximum;
//   - atomic and at most once: a container moves whole, at most once per
//     plan, never when pinned or moved within `cooldownMs`;
//   - fit: the target offers every device the container needs, takes work,
//     and keeps `memHeadroom` of its memory free after the move;
//   - economy: the plan aims at a band [(1 - stopSpread) * L, L], L the
//     level the cluster's load allows (estimated from every node's excess
//     and lack, counted in resources); of the moves that fit and lower
//     their pair's top, the one that covers most of the way to the band
//     (the source's part above L it sheds, the target's part below the
//     band it fills, both counted in the resources they stand for, not in
//     score) per byte moved: CPU-heavy, small containers first, no more
//     shed than the band needs. A plan drops, at the end, each move whose
//     undoing leaves the final maximum and minimum as they are (the
//     largest first);
//   - blockers first: a container that alone keeps its node above L (with
//     what cannot move: the host, pinned and cooling down containers), or
//     that would be left on its node above L once the plan has shed the
//     rest and be too large by then to move without overshooting, moves
//     before anything else, while the least loaded nodes still have room,
//     to the node where it ends lowest (a large one); no move puts a
//     container where it would be a blocker. When a plan still ends above
//     stopSpread with its maximum stuck, it is planned again with the
//     containers left on that maximum moved first and L lowered to the
//     band its least loaded node allows when that is lower (three passes
//     at most; the best is kept);
//   - lift: below a maximum that has nothing to give, work moves onto the
//     least loaded node from the most loaded node that has something for
//     it.
// Every container considered and not moved gets a Skip with its reason.
//
//   sched::Plan p = sched::plan(nodes, containers, {.nowMs = wallMs()});
//   for (const auto& m : p.moves) ...   // migrate m.container to m.to
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lxmig::sched {

struct NodeLoad {
  std::string name;
  double cpus = 1;                   // CPUs the node gives to containers
  uint64_t memTotalBytes = 0;        // memory the node gives to containers
  double hostCpu = 0;                // CPUs busy outside any container
  uint64_t hostMemBytes = 0;         // memory in use outside any container
  std::vector<std::string> devices;  // offered: "c 10:229", or a class ("gpu")
  bool takesWork = true;             // false while draining or cordoned
};

struct ContainerLoad {
  std::string name, node;
  uint64_t memBytes = 0;             // what moves, and what it holds on the target
  double cpu = 0;                    // CPUs in use (a rate over a window)
  std::vector<std::string> devices;  // needed: each offered by the target
  bool pinned = false;
  int64_t lastMoveMs = 0;  // 0: never moved (from the audit)
};

struct Params {
  double startSpread = 0.20;
  double stopSpread = 0.10;
  int maxMoves = 10;  // 0: unlimited
  int64_t cooldownMs = int64_t{6} * 3600 * 1000;
  int64_t nowMs = 0;
  double memHeadroom = 0.10;
};

struct Move {
  std::string container, from, to;
  uint64_t memBytes = 0;
  double fromBefore = 0, fromAfter = 0, toBefore = 0, toAfter = 0;  // node scores
};

struct Skip {
  std::string container, node;
  std::string why;  // one line: pinned, moved 2h ago (cooldown 6h), no node offers c 195:0, ...
};

struct Plan {
  std::vector<Move> moves;
  std::vector<Skip> skipped;
  double spreadBefore = 0, spreadAfter = 0;
  uint64_t bytes = 0;   // memory moved
  std::string verdict;  // one line: why the plan ends where it does
};

// Node scores: the mean of memory and CPU fractions in use.
double score(const NodeLoad& n, double cpu, uint64_t memBytes);

Plan plan(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const Params& p);

// Empties `node`: every container that can go is placed on the least
// loaded node that fits it; the others are skipped with their reason
// (pinned, devices, memory). Cooldown does not apply: maintenance wins.
Plan drain(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const std::string& node,
           const Params& p);

// Where a new container goes (`lxmig run` without --node): the least loaded
// node that takes work, offers the devices and fits the memory with its
// headroom; "" with `why` filled when none does.
std::string place(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers,
                  const ContainerLoad& newcomer, const Params& p, std::string* why);

}  // namespace lxmig::sched
