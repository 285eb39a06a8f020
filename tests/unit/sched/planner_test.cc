// The rebalancer's planner on small clusters written out by hand, and on a
// simulated one over 100 periods of noisy load.
#include "lxmig/sched/planner.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace lxmig::sched {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr int64_t kHour = 3600 * 1000;

NodeLoad node(const std::string& name, std::vector<std::string> devices = {}) {
  NodeLoad n;
  n.name = name;
  n.cpus = 4;
  n.memTotalBytes = 16 * kGiB;
  n.devices = std::move(devices);
  return n;
}

ContainerLoad container(const std::string& name, const std::string& on, double cpu, uint64_t mem) {
  ContainerLoad c;
  c.name = name;
  c.node = on;
  c.cpu = cpu;
  c.memBytes = mem;
  return c;
}

Params params() {
  Params p;
  p.nowMs = 100 * kHour;
  p.maxMoves = 0;
  return p;
}

// Every node's score after the plan, from scratch.
std::map<std::string, double> scoresAfter(const std::vector<NodeLoad>& nodes, std::vector<ContainerLoad> cs,
                                          const Plan& plan) {
  std::map<std::string, std::string> where;
  for (const auto& m : plan.moves) where[m.container] = m.to;
  std::map<std::string, std::pair<double, uint64_t>> use;
  for (auto& c : cs) {
    if (where.count(c.name)) c.node = where[c.name];
    use[c.node].first += c.cpu;
    use[c.node].second += c.memBytes;
  }
  std::map<std::string, double> out;
  for (const auto& n : nodes) out[n.name] = score(n, use[n.name].first, use[n.name].second);
  return out;
}

TEST(Planner, ABalancedClusterIsLeftAlone) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2")};
  std::vector<ContainerLoad> cs = {container("a", "n1", 1, 2 * kGiB), container("b", "n2", 1, 2 * kGiB)};
  Plan p = plan(nodes, cs, params());
  EXPECT_TRUE(p.moves.empty());
  EXPECT_NE(p.verdict.find("balanced"), std::string::npos) << p.verdict;
}

TEST(Planner, AHotNodeIsRelievedWithoutOvershootAndEachContainerMovesOnce) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2"), node("n3")};
  std::vector<ContainerLoad> cs;
  for (int i = 0; i < 24; ++i)
    cs.push_back(container("hot" + std::to_string(i), "n1", 0.1 + 0.01 * (i % 5), kGiB / 4 + (i % 7) * (kGiB / 16)));
  cs.push_back(container("cold", "n2", 0.1, kGiB / 2));
  Plan p = plan(nodes, cs, params());
  ASSERT_FALSE(p.moves.empty());
  EXPECT_GT(p.spreadBefore, 0.2);
  EXPECT_LE(p.spreadAfter, 0.10 + 1e-9) << p.verdict;
  std::set<std::string> moved;
  uint64_t bytes = 0;
  for (const auto& m : p.moves) {
    EXPECT_EQ(m.from, "n1");
    EXPECT_LT(m.toAfter, m.fromBefore) << m.container << " overshoots to " << m.to;
    if (m.toAfter > m.fromAfter) {
      EXPECT_EQ(&m, &p.moves.back()) << "only the last move may leave its target the highest";
    }
    EXPECT_TRUE(moved.insert(m.container).second) << m.container << " moved twice";
    bytes += m.memBytes;
  }
  EXPECT_EQ(bytes, p.bytes);
  // The plan's own arithmetic matches a recount.
  auto after = scoresAfter(nodes, cs, p);
  double hi = 0, lo = 1;
  for (const auto& [n, s] : after) hi = std::max(hi, s), lo = std::min(lo, s);
  EXPECT_NEAR((hi - lo) / hi, p.spreadAfter, 1e-9);
}

// Containers too large for the gap: the plan stops short of the stop
// threshold rather than overshoot, and says so.
TEST(Planner, LumpyContainersStopWithoutOvershoot) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2"), node("n3")};
  std::vector<ContainerLoad> cs;
  for (int i = 0; i < 8; ++i) cs.push_back(container("big" + std::to_string(i), "n1", 0.45, kGiB + i * (kGiB / 4)));
  Plan p = plan(nodes, cs, params());
  ASSERT_FALSE(p.moves.empty());
  EXPECT_LT(p.spreadAfter, p.spreadBefore / 2);
  for (const auto& m : p.moves) EXPECT_LT(m.toAfter, m.fromBefore) << m.container;
  if (p.spreadAfter > 0.10) {
    EXPECT_NE(p.verdict.find("without overshooting"), std::string::npos) << p.verdict;
  }
}

// A container that alone keeps its small node above the level the cluster
// can reach (2.8 of 4 CPUs) moves first, while a large node is still empty,
// to where it weighs least; moved when its node became the maximum, every
// node had been lifted too far to take it without overshooting, and the
// plan stopped at 11.4%.
TEST(Planner, AContainerTooLargeForTheLevelMovesFirstToALargeNode) {
  NodeLoad h = node("h"), b = node("b");
  h.cpus = b.cpus = 16;
  h.memTotalBytes = b.memTotalBytes = 64 * kGiB;
  std::vector<NodeLoad> nodes = {node("s1"), node("s2"), node("s3"), node("s4"), h, b};
  std::vector<ContainerLoad> cs = {container("big", "s1", 2.8, 2 * kGiB)};
  for (int i = 0; i < 200; ++i) cs.push_back(container("w" + std::to_string(i), "h", 0.1, kGiB / 4));
  Plan p = plan(nodes, cs, params());
  EXPECT_LE(p.spreadAfter, 0.10 + 1e-9) << p.verdict;
  ASSERT_FALSE(p.moves.empty());
  EXPECT_EQ(p.moves.front().container, "big");
  EXPECT_EQ(p.moves.front().to, "b");
  EXPECT_NEAR(p.moves.front().toAfter - p.moves.front().toBefore, (2.8 / 16 + 2.0 / 64) / 2, 1e-9);
  for (const auto& m : p.moves) EXPECT_LT(m.toAfter, m.fromBefore) << m.container << " overshoots to " << m.to;
  auto after = scoresAfter(nodes, cs, p);
  double hi = 0, lo = 1;
  for (const auto& [n, sc] : after) hi = std::max(hi, sc), lo = std::min(lo, sc);
  EXPECT_NEAR((hi - lo) / hi, p.spreadAfter, 1e-9);
}

NodeLoad sized(const std::string& name, double cpus, uint64_t memGiB) {
  NodeLoad n = node(name);
  n.cpus = cpus;
  n.memTotalBytes = memGiB * kGiB;
  return n;
}

// The spread of the nodes' scores after the plan, from scratch; and no
// move's target ends where its source was.
double checkedSpread(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& cs, const Plan& p) {
  for (const auto& m : p.moves) EXPECT_LT(m.toAfter, m.fromBefore) << m.container << " overshoots to " << m.to;
  auto after = scoresAfter(nodes, cs, p);
  double hi = 0, lo = 1;
  for (const auto& [n, sc] : after) hi = std::max(hi, sc), lo = std::min(lo, sc);
  EXPECT_NEAR((hi - lo) / hi, p.spreadAfter, 1e-9);
  return (hi - lo) / hi;
}

// n0 sheds the cheapest way first: c3 has the most score per byte. Without
// more thought that leaves it at 8.6% with c4 and c5, each of which would
// end above that on any node once the others are lifted (the plan stopped
// there at 27.3%). c4 is too large to move late, so it moves first.
TEST(Planner, AContainerTooLargeToMoveLateMovesFirst) {
  std::vector<NodeLoad> nodes = {sized("n0", 16, 64), sized("n1", 16, 64), sized("n2", 16, 64), sized("n3", 4, 16)};
  std::vector<ContainerLoad> cs = {
      container("c0", "n2", 0.25, 2 * kGiB),     container("c1", "n1", 2.0, 2 * kGiB),
      container("c2", "n1", 0.25, 3 * kGiB / 2), container("c3", "n0", 1.0, kGiB),
      container("c4", "n0", 1.25, 3 * kGiB / 2), container("c5", "n0", 0.75, 3 * kGiB / 2)};
  Plan p = plan(nodes, cs, params());
  EXPECT_LE(checkedSpread(nodes, cs, p), 0.10 + 1e-9) << p.verdict;
  ASSERT_FALSE(p.moves.empty());
  EXPECT_EQ(p.moves.front().container, "c4");
  EXPECT_EQ(p.moves.front().from, "n0");
}

// The way to the band is counted in resources, not in score: a point of a
// 16-CPU node's score is four points of a 4-CPU node's. Counted in score,
// this plan filled the empty small node n3 with c9 (3 GiB) and moved 7 GiB
// in all; counted in resources, 4.5 GiB (c10 and c0 fill n3).
TEST(Planner, WorkIsCountedInResourcesNotScore) {
  std::vector<NodeLoad> nodes = {sized("n0", 16, 64), sized("n1", 4, 16), sized("n2", 16, 64), sized("n3", 4, 16),
                                 sized("n4", 16, 64)};
  std::vector<ContainerLoad> cs = {container("c0", "n0", 0.5, kGiB / 2),      container("c1", "n0", 1.75, 3 * kGiB),
                                   container("c2", "n2", 2.0, 2 * kGiB),      container("c3", "n4", 1.75, 3 * kGiB),
                                   container("c4", "n0", 2.0, 2 * kGiB),      container("c5", "n0", 1.0, kGiB / 2),
                                   container("c6", "n0", 1.5, kGiB / 2),      container("c7", "n2", 1.0, kGiB / 2),
                                   container("c8", "n1", 1.0, kGiB),          container("c9", "n0", 0.5, 3 * kGiB),
                                   container("c10", "n4", 0.25, 3 * kGiB / 2)};
  Plan p = plan(nodes, cs, params());
  EXPECT_LE(checkedSpread(nodes, cs, p), 0.10 + 1e-9) << p.verdict;
  EXPECT_LE(p.bytes, 9 * kGiB / 2);
  for (const auto& m : p.moves) EXPECT_NE(m.container, "c9");
}

// A plan that ends stuck on its maximum (here 14.3%: n1 keeps c7, c9 and
// c11 and none of them can leave without overshooting by then) is planned
// again with the containers left on that maximum moved first, while the
// least loaded nodes have room; a third pass does the same for the next
// one, and the plan ends within the threshold.
TEST(Planner, APlanStuckOnItsMaximumIsPlannedAgainWithThoseContainersFirst) {
  std::vector<NodeLoad> nodes = {sized("n0", 16, 64), sized("n1", 16, 64), sized("n2", 4, 16), sized("n3", 4, 16)};
  std::vector<ContainerLoad> cs = {container("c0", "n0", 1.0, kGiB / 2),      container("c1", "n0", 0.25, kGiB / 2),
                                   container("c2", "n0", 0.25, 3 * kGiB),     container("c3", "n3", 1.75, 3 * kGiB / 2),
                                   container("c4", "n0", 1.75, 2 * kGiB),     container("c5", "n0", 1.25, kGiB),
                                   container("c6", "n0", 0.75, kGiB),         container("c7", "n1", 1.75, 3 * kGiB),
                                   container("c8", "n0", 0.75, 5 * kGiB / 2), container("c9", "n1", 1.0, 5 * kGiB / 2),
                                   container("c10", "n0", 1.0, 3 * kGiB / 2), container("c11", "n1", 0.5, kGiB)};
  Plan p = plan(nodes, cs, params());
  EXPECT_LE(checkedSpread(nodes, cs, p), 0.10 + 1e-9) << p.verdict;
  EXPECT_NE(p.verdict.find("balanced"), std::string::npos) << p.verdict;
  bool n1Sheds = false;
  for (const auto& m : p.moves) n1Sheds = n1Sheds || m.from == "n1";
  EXPECT_TRUE(n1Sheds);
}

// The plan ends with no move it could do without: undoing any one would
// lift its source above the final maximum or drop its target below the
// final minimum (or a later move goes to its source or leaves its
// target). Recorded scores stay consistent: each move's source loses and
// its target gains the container's weight, and no target ends where its
// source was.
TEST(Planner, NoMoveTheEndStateDoesNotNeed) {
  // Skewed, nodes of three sizes; on this one a plan without the rule
  // keeps one such move.
  std::mt19937_64 rng(65);
  std::vector<NodeLoad> nodes;
  for (int i = 0; i < 50; ++i) {
    nodes.push_back(node("n" + std::to_string(i)));
    nodes.back().cpus = 4 << (i % 3);
    nodes.back().memTotalBytes = (16 * kGiB) << (i % 3);
  }
  std::vector<ContainerLoad> cs;
  for (int i = 0; i < 1000; ++i) {
    const int on = static_cast<int>(rng() % 100) < 70 ? static_cast<int>(rng() % 10) : static_cast<int>(rng() % 50);
    const double cpu = 0.02 + static_cast<double>(rng() % 30) / 100.0;
    const uint64_t mem = (uint64_t{1} << 26) * (1 + rng() % 8);
    cs.push_back(container("c" + std::to_string(i), "n" + std::to_string(on), cpu, mem));
  }
  Plan p = plan(nodes, cs, params());
  ASSERT_FALSE(p.moves.empty());
  EXPECT_LE(p.spreadAfter, 0.10 + 1e-9) << p.verdict;
  auto after = scoresAfter(nodes, cs, p);
  double hi = 0, lo = 1;
  for (const auto& [n, sc] : after) hi = std::max(hi, sc), lo = std::min(lo, sc);
  EXPECT_NEAR((hi - lo) / hi, p.spreadAfter, 1e-9);
  std::map<std::string, const NodeLoad*> byName;
  for (const auto& n : nodes) byName[n.name] = &n;
  std::map<std::string, const ContainerLoad*> cByName;
  for (const auto& c : cs) cByName[c.name] = &c;
  uint64_t bytes = 0;
  for (size_t k = 0; k < p.moves.size(); ++k) {
    const Move& m = p.moves[k];
    const ContainerLoad& c = *cByName[m.container];
    const NodeLoad &from = *byName[m.from], &to = *byName[m.to];
    const double wFrom = score(from, c.cpu, c.memBytes), wTo = score(to, c.cpu, c.memBytes);
    bytes += m.memBytes;
    EXPECT_LT(m.toAfter, m.fromBefore) << m.container;
    EXPECT_NEAR(m.fromBefore - m.fromAfter, wFrom, 1e-9) << m.container;
    EXPECT_NEAR(m.toAfter - m.toBefore, wTo, 1e-9) << m.container;
    bool later = false;
    for (size_t j = k + 1; j < p.moves.size(); ++j) later = later || p.moves[j].to == m.from || p.moves[j].from == m.to;
    if (later) continue;
    EXPECT_TRUE(after[m.from] + wFrom > hi || after[m.to] - wTo < lo)
        << m.container << " " << m.from << " -> " << m.to << " is not needed";
  }
  EXPECT_EQ(bytes, p.bytes);
}

TEST(Planner, PinnedAndRecentlyMovedContainersStay) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2")};
  std::vector<ContainerLoad> cs = {container("pinned", "n1", 2, 4 * kGiB), container("recent", "n1", 1.5, 4 * kGiB)};
  cs[0].pinned = true;
  Params prm = params();
  cs[1].lastMoveMs = prm.nowMs - 2 * kHour;
  Plan p = plan(nodes, cs, prm);
  EXPECT_TRUE(p.moves.empty());
  std::map<std::string, std::string> why;
  for (const auto& s : p.skipped) why[s.container] = s.why;
  EXPECT_EQ(why["pinned"], "pinned");
  EXPECT_EQ(why["recent"], "moved 2 h ago (cooldown 6 h)");
  // After the cooldown it may move.
  cs[1].lastMoveMs = prm.nowMs - 7 * kHour;
  Plan later = plan(nodes, cs, prm);
  ASSERT_EQ(later.moves.size(), 1u) << later.verdict;
  EXPECT_EQ(later.moves[0].container, "recent");
}

TEST(Planner, DevicesAndMemoryMustFitTheTarget) {
  // n2 is the emptiest but offers no GPU and has little memory left.
  NodeLoad n2 = node("n2");
  n2.hostMemBytes = 13 * kGiB;
  std::vector<NodeLoad> nodes = {node("n1", {"gpu"}), n2, node("n3", {"gpu"})};
  std::vector<ContainerLoad> cs = {container("gpu-job", "n1", 2.5, 2 * kGiB), container("big", "n1", 0.5, 6 * kGiB),
                                   container("n3-load", "n3", 1.2, 3 * kGiB)};
  cs[0].devices = {"gpu"};
  Plan p = plan(nodes, cs, params());
  for (const auto& m : p.moves) {
    if (m.container == "gpu-job") {
      EXPECT_EQ(m.to, "n3");
    }
    if (m.container == "big") {
      EXPECT_NE(m.to, "n2") << "6 GiB cannot fit in n2's 1.4 GiB of room";
    }
  }
}

TEST(Planner, MaxMovesCapsThePlan) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2"), node("n3"), node("n4")};
  std::vector<ContainerLoad> cs;
  for (int i = 0; i < 12; ++i) cs.push_back(container("c" + std::to_string(i), "n1", 0.3, kGiB));
  Params prm = params();
  prm.maxMoves = 2;
  Plan p = plan(nodes, cs, prm);
  EXPECT_EQ(p.moves.size(), 2u);
  EXPECT_NE(p.verdict.find("--max-moves 2"), std::string::npos) << p.verdict;
}

TEST(Planner, DrainEmptiesANodeSayingWhatMustStay) {
  std::vector<NodeLoad> nodes = {node("n1", {"c 10:200"}), node("n2"), node("n3")};
  std::vector<ContainerLoad> cs = {container("a", "n1", 0.5, 2 * kGiB), container("b", "n1", 0.2, 1 * kGiB),
                                   container("tun", "n1", 0.1, kGiB / 4), container("p", "n1", 0.1, kGiB / 4)};
  cs[2].devices = {"c 10:200"};
  cs[3].pinned = true;
  Plan p = drain(nodes, cs, "n1", params());
  std::set<std::string> moved;
  for (const auto& m : p.moves) {
    moved.insert(m.container);
    EXPECT_NE(m.to, "n1");
  }
  EXPECT_EQ(moved, (std::set<std::string>{"a", "b"}));
  std::map<std::string, std::string> why;
  for (const auto& s : p.skipped) why[s.container] = s.why;
  EXPECT_EQ(why["p"], "pinned");
  EXPECT_NE(why["tun"].find("offers c 10:200"), std::string::npos) << why["tun"];
  EXPECT_NE(p.verdict.find("2 container(s) must stay on n1"), std::string::npos) << p.verdict;
}

TEST(Planner, PlaceChoosesTheLeastLoadedNodeThatFits) {
  std::vector<NodeLoad> nodes = {node("n1"), node("n2", {"gpu"}), node("n3")};
  std::vector<ContainerLoad> cs = {container("a", "n1", 2, 4 * kGiB), container("b", "n3", 0.5, kGiB)};
  std::string why;
  EXPECT_EQ(place(nodes, cs, container("new", "", 0.1, kGiB), params(), &why), "n2");
  ContainerLoad gpu = container("g", "", 0.1, kGiB);
  gpu.devices = {"gpu"};
  EXPECT_EQ(place(nodes, cs, gpu, params(), &why), "n2");
  gpu.devices = {"fpga"};
  EXPECT_EQ(place(nodes, cs, gpu, params(), &why), "");
  EXPECT_NE(why.find("offers fpga"), std::string::npos) << why;
  EXPECT_EQ(place(nodes, cs, container("huge", "", 0.1, 64 * kGiB), params(), &why), "");
  EXPECT_NE(why.find("no room"), std::string::npos) << why;
}

// 100 hourly periods on 20 nodes with noisy CPU load, each plan carried
// out: no container goes A -> B -> A within the cooldown, every plan
// respects the hysteresis, and the cluster ends within the threshold.
TEST(Planner, NoPingPongOverAHundredNoisyPeriods) {
  std::mt19937_64 rng(7);
  std::vector<NodeLoad> nodes;
  for (int i = 0; i < 20; ++i) nodes.push_back(node("n" + std::to_string(i)));
  std::vector<ContainerLoad> cs;
  std::vector<double> base;
  for (int i = 0; i < 200; ++i) {
    // Skewed: the first nodes get most of the work.
    const int on = static_cast<int>(rng() % 100) < 60 ? static_cast<int>(rng() % 4) : static_cast<int>(rng() % 20);
    cs.push_back(container("c" + std::to_string(i), "n" + std::to_string(on), 0.05 + (rng() % 40) / 100.0,
                           (uint64_t{1} << 28) * (1 + rng() % 4)));
    base.push_back(cs.back().cpu);
  }
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> history;  // container -> (time, node)
  Params prm = params();
  int moves = 0;
  for (int period = 0; period < 100; ++period) {
    prm.nowMs = (200 + period) * kHour;
    std::uniform_real_distribution<double> noise(0.7, 1.3);
    for (size_t i = 0; i < cs.size(); ++i) cs[i].cpu = base[i] * noise(rng);
    Plan p = plan(nodes, cs, prm);
    if (p.spreadBefore <= prm.startSpread) {
      EXPECT_TRUE(p.moves.empty()) << "period " << period;
    }
    for (const auto& m : p.moves) {
      for (auto& c : cs)
        if (c.name == m.container) {
          auto& h = history[c.name];
          if (h.empty()) h.push_back({0, c.node});
          h.push_back({prm.nowMs, m.to});
          c.node = m.to;
          c.lastMoveMs = prm.nowMs;
        }
      ++moves;
    }
  }
  for (const auto& [name, h] : history)
    for (size_t k = 2; k < h.size(); ++k) {
      if (h[k].second == h[k - 2].second) {
        EXPECT_GE(h[k].first - h[k - 1].first, prm.cooldownMs) << name << " went back within the cooldown";
      }
    }
  EXPECT_GT(moves, 0);
  prm.nowMs += kHour;
  Plan last = plan(nodes, cs, prm);
  EXPECT_LE(last.spreadBefore, 0.30) << "the cluster stays near balance under noise";
}

}  // namespace
}  // namespace lxmig::sched
