#include "lxmig/sched/planner.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace lxmig::sched {
namespace {

// A move costs more than its bytes: a frozen window, a restore. Counting
// it as this many bytes keeps the planner from moving many tiny
// containers where one larger one does the same.
constexpr double kMoveCostBytes = 256.0 * (1 << 20);
// Per container: targets tried (that fit), nodes looked at (fit or not),
// lowest score first; a plan's cost stays linear in the containers.
constexpr int kTargetsTried = 8;
// A move must bring the higher of its pair down by at least this much of a
// node's score (a tenth of a percent): no move for nothing (an idle
// container shifted between two equal nodes).
constexpr double kMinGain = 0.001;
constexpr int kNodesExamined = 64;
// Plans tried at most, each with a lower level for its blockers (see plan()).
constexpr int kPasses = 3;

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

std::string pct(double f) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", f * 100);
  return b;
}

std::string ago(int64_t ms) {
  if (ms >= 3600 * 1000) return std::to_string(ms / (3600 * 1000)) + " h";
  return std::to_string(std::max<int64_t>(ms / (60 * 1000), 0)) + " min";
}

// The cluster as the plan changes it.
class State {
 public:
  State(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const Params& p)
      : nodes_(nodes), containers_(containers), p_(p) {
    cpu_.resize(nodes.size());
    mem_.resize(nodes.size());
    members_.resize(nodes.size());
    offers_.resize(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      index_[nodes[i].name] = i;
      cpu_[i] = nodes[i].hostCpu;
      mem_[i] = nodes[i].hostMemBytes;
      offers_[i].insert(nodes[i].devices.begin(), nodes[i].devices.end());
    }
    where_.assign(containers.size(), kNone);
    for (size_t c = 0; c < containers.size(); ++c) {
      auto it = index_.find(containers[c].node);
      if (it == index_.end()) continue;  // on a node not in the list: not ours to move
      where_[c] = it->second;
      members_[it->second].push_back(c);
      cpu_[it->second] += containers[c].cpu;
      mem_[it->second] += containers[c].memBytes;
    }
    for (size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].takesWork) insert(i);
  }

  static constexpr size_t kNone = static_cast<size_t>(-1);

  double scoreOf(size_t n) const { return score(nodes_[n], cpu_[n], mem_[n]); }
  double spread() const {
    if (byScore_.empty()) return 0;
    const double hi = byScore_.rbegin()->first, lo = byScore_.begin()->first;
    return hi > 0 ? (hi - lo) / hi : 0;
  }
  const std::set<std::pair<double, size_t>>& byScore() const { return byScore_; }
  // The nodes that may take container c, lowest score first: all, or for a
  // container that needs devices those that offer the first of them (the
  // rest is checked by unfit()).
  const std::set<std::pair<double, size_t>>& candidates(size_t c) const {
    const auto& need = containers_[c].devices;
    if (need.empty()) return byScore_;
    auto it = byDevice_.find(need.front());
    return it == byDevice_.end() ? empty_ : it->second;
  }
  const std::vector<size_t>& members(size_t n) const { return members_[n]; }
  size_t whereIs(size_t c) const { return where_[c]; }
  size_t containerOf(const std::string& name) const {
    if (byName_.empty())
      for (size_t c = 0; c < containers_.size(); ++c) byName_[containers_[c].name] = c;
    auto it = byName_.find(name);
    return it == byName_.end() ? kNone : it->second;
  }
  bool takesWork(size_t n) const { return nodes_[n].takesWork; }
  size_t nodeCount() const { return nodes_.size(); }
  double hostCpu(size_t n) const { return nodes_[n].hostCpu; }
  uint64_t hostMem(size_t n) const { return nodes_[n].hostMemBytes; }
  double scoreWith(size_t n, double cpu, uint64_t mem) const { return score(nodes_[n], cpu, mem); }
  // The highest score among the nodes that take work other than a and b.
  double highestExcept(size_t a, size_t b) const {
    for (auto it = byScore_.rbegin(); it != byScore_.rend(); ++it)
      if (it->second != a && it->second != b) return it->first;
    return 0;
  }
  bool fits(size_t c, size_t t) const {
    const NodeLoad& node = nodes_[t];
    if (!node.takesWork) return false;
    for (const auto& d : containers_[c].devices)
      if (!offers_[t].count(d)) return false;
    const double room = static_cast<double>(node.memTotalBytes) * (1 - p_.memHeadroom);
    return static_cast<double>(mem_[t] + containers_[c].memBytes) <= room;
  }

  // Each node's resources per unit of its score, in the mix of CPU and
  // memory the cluster uses, as a share of the cluster's whole use: what a
  // point of score on that node stands for (more on a large node).
  std::vector<double> unitSizes() const {
    double cpuUse = 0, memUse = 0;
    for (const auto& [sc, n] : byScore_) cpuUse += cpu_[n], memUse += static_cast<double>(mem_[n]);
    std::vector<double> size(nodes_.size(), 0);
    for (const auto& [sc, n] : byScore_) {
      const double unit = score(nodes_[n], cpuUse, static_cast<uint64_t>(memUse));
      size[n] = unit > 0 ? 1 / unit : 0;
    }
    return size;
  }

  // The level a plan can bring the cluster to: the highest score L such
  // that what lies above L, taken down to L, fills what lies below
  // (1 - stop) * L up to it. Score is not conserved (a container weighs
  // more on a small node than on a large one), resources are: each node's
  // excess or lack counts as the resources it stands for (unitSizes()). An
  // estimate, a few percent high in practice (the work that moves is
  // CPU-heavy, the least loaded nodes are of every size).
  double balanceLevel(double stop) const {
    if (byScore_.empty()) return 0;
    const std::vector<double> size = unitSizes();
    double lo = byScore_.begin()->first, hi = byScore_.rbegin()->first;
    for (int i = 0; i < 50; ++i) {
      const double mid = (lo + hi) / 2;
      double above = 0, below = 0;
      for (const auto& [sc, n] : byScore_) {
        if (sc > mid) above += (sc - mid) * size[n];
        if (sc < (1 - stop) * mid) below += ((1 - stop) * mid - sc) * size[n];
      }
      (above > below ? lo : hi) = mid;
    }
    return hi;
  }
  size_t nodeOf(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? kNone : it->second;
  }

  // A lower bound of container c's weight on any node that takes work: on
  // one with the most CPUs and the most memory of the cluster.
  double lightest(size_t c) const {
    if (largestCpus_ == 0)
      for (size_t n = 0; n < nodes_.size(); ++n)
        if (nodes_[n].takesWork) {
          largestCpus_ = std::max(largestCpus_, nodes_[n].cpus);
          largestMem_ = std::max(largestMem_, static_cast<double>(nodes_[n].memTotalBytes));
        }
    const double cpuShare = largestCpus_ > 0 ? containers_[c].cpu / largestCpus_ : 1;
    const double memShare = largestMem_ > 0 ? static_cast<double>(containers_[c].memBytes) / largestMem_ : 1;
    return (cpuShare + memShare) / 2;
  }

  // Score added to (or taken from) node n by container c.
  double weight(size_t c, size_t n) const {
    const NodeLoad& node = nodes_[n];
    const double cpuShare = node.cpus > 0 ? containers_[c].cpu / node.cpus : 1;
    const double memShare =
        node.memTotalBytes > 0 ? static_cast<double>(containers_[c].memBytes) / node.memTotalBytes : 1;
    return (cpuShare + memShare) / 2;
  }

  // Why node t cannot take container c ("" when it can).
  std::string unfit(size_t c, size_t t) const {
    const NodeLoad& node = nodes_[t];
    if (!node.takesWork) return node.name + " takes no work";
    for (const auto& d : containers_[c].devices)
      if (!offers_[t].count(d)) return node.name + " does not offer " + d;
    const double room = static_cast<double>(node.memTotalBytes) * (1 - p_.memHeadroom);
    if (static_cast<double>(mem_[t] + containers_[c].memBytes) > room)
      return node.name + " has no room for " + mib(containers_[c].memBytes);
    return "";
  }

  Move move(size_t c, size_t to) {
    const size_t from = where_[c];
    Move m;
    m.container = containers_[c].name;
    m.from = nodes_[from].name;
    m.to = nodes_[to].name;
    m.memBytes = containers_[c].memBytes;
    m.fromBefore = scoreOf(from);
    m.toBefore = scoreOf(to);
    reindex(from, [&] {
      cpu_[from] -= containers_[c].cpu;
      mem_[from] -= containers_[c].memBytes;
      auto& mb = members_[from];
      mb.erase(std::find(mb.begin(), mb.end(), c));
    });
    reindex(to, [&] {
      cpu_[to] += containers_[c].cpu;
      mem_[to] += containers_[c].memBytes;
      members_[to].push_back(c);
    });
    where_[c] = to;
    m.fromAfter = scoreOf(from);
    m.toAfter = scoreOf(to);
    return m;
  }

 private:
  void insert(size_t n) {
    byScore_.insert({scoreOf(n), n});
    for (const auto& d : nodes_[n].devices) byDevice_[d].insert({scoreOf(n), n});
  }
  void erase(size_t n) {
    byScore_.erase({scoreOf(n), n});
    for (const auto& d : nodes_[n].devices) byDevice_[d].erase({scoreOf(n), n});
  }
  template <typename F>
  void reindex(size_t n, F change) {
    const bool indexed = nodes_[n].takesWork;
    if (indexed) erase(n);
    change();
    if (indexed) insert(n);
  }

  const std::vector<NodeLoad>& nodes_;
  const std::vector<ContainerLoad>& containers_;
  const Params& p_;
  std::unordered_map<std::string, size_t> index_;
  mutable std::unordered_map<std::string, size_t> byName_;  // containers, built when first asked
  mutable double largestCpus_ = 0, largestMem_ = 0;         // of the nodes that take work, when first asked
  std::vector<double> cpu_;
  std::vector<uint64_t> mem_;
  std::vector<std::vector<size_t>> members_;
  std::vector<std::unordered_set<std::string>> offers_;
  std::vector<size_t> where_;
  std::set<std::pair<double, size_t>> byScore_;
  std::unordered_map<std::string, std::set<std::pair<double, size_t>>> byDevice_;
  const std::set<std::pair<double, size_t>> empty_;
};

// Why container c may not move in a rebalance ("" when it may).
std::string frozenOut(const ContainerLoad& c, const Params& p) {
  if (c.pinned) return "pinned";
  if (c.lastMoveMs > 0 && p.nowMs - c.lastMoveMs < p.cooldownMs)
    return "moved " + ago(p.nowMs - c.lastMoveMs) + " ago (cooldown " + ago(p.cooldownMs) + ")";
  return "";
}

// A blocker is a container that alone keeps its node above the level the
// plan can bring the cluster to (with what cannot move there: the host's
// own use, pinned containers, containers in cooldown). It must leave, and
// the time to move it is first, while the least loaded nodes still have
// room: once the plan has lifted them, no node can take it without ending
// above its source, and its node stays the cluster's maximum. The largest
// first, each to the node where it ends lowest (a large one: a container
// weighs less on a node with more CPUs and memory), and only there if it is
// no blocker on that node and the move obeys the rules of every move (no
// overshoot, no new maximum, fit).
//
// Lumpy nodes too: a node above the level, shed down to it in the order the
// plan favours (the most score per byte first), may be left above it with
// containers that are all too large to move late: put on the largest node
// of the cluster at the band's floor (where the plan leaves its least
// loaded nodes), each would end at or above the node's score (overshoot).
// The node would end as the stuck maximum (the 10,000-node benchmark did,
// at 22.0% with two containers of 9.4% and 10.3% of it): the containers
// that would be too large when their turn comes move first instead.
//
// And the containers an earlier pass of the plan left on its stuck maximum
// (`early`, see plan()).
template <typename Full, typename Commit>
void relocateBlockers(State& s, const std::vector<ContainerLoad>& containers, const Params& p, double level,
                      const std::vector<double>& fixedScore, const std::vector<bool>& early, Full full, Commit commit) {
  std::vector<std::pair<double, size_t>> blockers;  // (weight on its node, container)
  const double floor = (1 - p.stopSpread) * level;
  for (size_t c = 0; c < containers.size(); ++c)
    if (early[c] && s.whereIs(c) != State::kNone && frozenOut(containers[c], p).empty())
      blockers.push_back({s.weight(c, s.whereIs(c)), c});
  for (const auto& [sc, n] : s.byScore()) {
    if (sc <= level) continue;
    std::vector<size_t> movable;
    bool blocked = false;
    for (size_t c : s.members(n)) {
      if (!frozenOut(containers[c], p).empty() || early[c]) continue;
      movable.push_back(c);
      if (fixedScore[n] + s.weight(c, n) > level) {
        blockers.push_back({s.weight(c, n), c});
        blocked = true;
      }
    }
    if (blocked) continue;
    // A structured binding cannot be captured before C++20's P1091 (clang 14).
    auto perByte = [&, node = n](size_t c) {
      return s.weight(c, node) / (static_cast<double>(containers[c].memBytes) + 1);
    };
    std::sort(movable.begin(), movable.end(), [&](size_t a, size_t b) { return perByte(a) > perByte(b); });
    double left = sc;
    for (size_t c : movable) {
      if (left <= level) break;
      if (floor + s.lightest(c) >= left) blockers.push_back({s.weight(c, n), c});
      left -= s.weight(c, n);
    }
  }
  std::sort(blockers.rbegin(), blockers.rend());
  for (const auto& [w, c] : blockers) {
    if (full()) return;
    const size_t src = s.whereIs(c);
    const double srcScore = s.scoreOf(src);
    if (early[c] && srcScore <= level) continue;  // its node no longer needs it gone
    const double fromAfter = srcScore - w;
    size_t best = State::kNone;
    double bestAfter = srcScore;
    for (const auto& [sc, t] : s.candidates(c)) {
      if (sc >= bestAfter) break;  // lowest first: no later node can end lower
      if (t == src || !s.fits(c, t)) continue;
      const double wt = s.weight(c, t);
      const double toAfter = sc + wt;
      if (toAfter >= bestAfter || fixedScore[t] + wt > level) continue;
      if (toAfter > std::max(fromAfter, s.highestExcept(src, t))) continue;  // a new maximum
      best = t;
      bestAfter = toAfter;
    }
    if (best != State::kNone) commit(c, best);
  }
}

// The plan moves work from the most loaded node to the least loaded ones
// one move at a time, and the early moves are made before the plan knows
// where the cluster ends: a source may end below the final maximum, a
// target above the final minimum. A move whose undoing keeps its source at
// or below the final maximum and its target at or above the final minimum
// is not needed: the plan's spread does not change without it. The
// largest first. Only when no later move goes to its source or leaves
// from its target: then every later move still obeys the rules (a later
// move from its source starts higher, one to its target ends lower) and
// its recorded scores are corrected by the container's weight.
void dropNeedless(State& s, Plan& out) {
  if (out.moves.empty() || s.byScore().empty()) return;
  const double hi = s.byScore().rbegin()->first, lo = s.byScore().begin()->first;
  const size_t n = out.moves.size();
  std::vector<size_t> from(n), to(n), who(n);
  std::vector<std::vector<size_t>> leaving(s.nodeCount()), arriving(s.nodeCount());
  for (size_t k = 0; k < n; ++k) {
    from[k] = s.nodeOf(out.moves[k].from);
    to[k] = s.nodeOf(out.moves[k].to);
    who[k] = s.containerOf(out.moves[k].container);
    leaving[from[k]].push_back(k);
    arriving[to[k]].push_back(k);
  }
  std::vector<bool> dropped(n, false);
  auto laterIn = [&](const std::vector<size_t>& ks, size_t k) {
    for (size_t j : ks)
      if (j > k && !dropped[j]) return true;
    return false;
  };
  std::vector<size_t> order(n);
  for (size_t k = 0; k < n; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return out.moves[a].memBytes > out.moves[b].memBytes; });
  for (size_t k : order) {
    const size_t a = from[k], b = to[k], c = who[k];
    if (!s.takesWork(a) || laterIn(arriving[a], k) || laterIn(leaving[b], k)) continue;
    const double wa = s.weight(c, a), wb = s.weight(c, b);
    if (s.scoreOf(a) + wa > hi || s.scoreOf(b) - wb < lo) continue;
    s.move(c, a);
    dropped[k] = true;
    out.bytes -= out.moves[k].memBytes;
    for (size_t j : leaving[a])
      if (j > k) out.moves[j].fromBefore += wa, out.moves[j].fromAfter += wa;
    for (size_t j : arriving[b])
      if (j > k) out.moves[j].toBefore -= wb, out.moves[j].toAfter -= wb;
  }
  std::vector<Move> kept;
  for (size_t k = 0; k < n; ++k)
    if (!dropped[k]) kept.push_back(std::move(out.moves[k]));
  out.moves = std::move(kept);
}

// The score of what stays on each node whatever a plan does: the host's
// own use, pinned containers, containers in cooldown.
std::vector<double> fixedScores(const State& s, const std::vector<ContainerLoad>& containers, const Params& p) {
  std::vector<double> out(s.nodeCount());
  for (size_t n = 0; n < s.nodeCount(); ++n) {
    double cpu = s.hostCpu(n);
    uint64_t mem = s.hostMem(n);
    for (size_t c : s.members(n))
      if (!frozenOut(containers[c], p).empty()) cpu += containers[c].cpu, mem += containers[c].memBytes;
    out[n] = s.scoreWith(n, cpu, mem);
  }
  return out;
}

bool capped(const Plan& plan, const Params& p) {
  return p.maxMoves > 0 && static_cast<int>(plan.moves.size()) >= p.maxMoves;
}

}  // namespace

double score(const NodeLoad& n, double cpu, uint64_t memBytes) {
  const double cpuFrac = n.cpus > 0 ? cpu / n.cpus : 1;
  const double memFrac = n.memTotalBytes > 0 ? static_cast<double>(memBytes) / n.memTotalBytes : 1;
  return (cpuFrac + memFrac) / 2;
}

namespace {

// How a pass of the plan ended: the least loaded node's score, and when
// the plan is stuck above the stop threshold, the movable containers left
// on its maximum.
struct PassEnd {
  double lowest = 0;
  std::vector<size_t> leftOnTop;
};

// A plan whose blockers are the containers that keep their node above
// `level`, and the `early` ones.
Plan planAt(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const Params& p,
            double level, const std::vector<bool>& early, PassEnd* end) {
  State s(nodes, containers, p);
  Plan out;
  out.spreadBefore = s.spread();
  // Times each container was moved by this plan, and its move's index.
  constexpr int kMaxHops = 3;
  constexpr size_t kNoMove = static_cast<size_t>(-1);
  std::vector<int> moved(containers.size(), 0);
  std::vector<size_t> planned(containers.size(), kNoMove);
  std::vector<bool> skipped(containers.size(), false);
  auto skip = [&](size_t c, const std::string& why) {
    if (skipped[c]) return;
    skipped[c] = true;
    out.skipped.push_back({containers[c].name, containers[c].node, why});
  };
  // A container this plan already placed moves on: its one move gets the
  // new target (or is dropped when it goes back where it was), so the plan
  // still moves every container once at most.
  auto commit = [&](size_t c, size_t t) {
    Move m = s.move(c, t);
    ++moved[c];
    if (planned[c] == kNoMove) {
      planned[c] = out.moves.size();
      out.moves.push_back(std::move(m));
      out.bytes += containers[c].memBytes;
    } else {
      Move& first = out.moves[planned[c]];
      first.to = m.to;
      first.toBefore = m.toBefore;
      first.toAfter = m.toAfter;
      first.fromAfter = std::min(first.fromAfter, m.fromAfter);
      if (first.to == first.from) first.to.clear();  // dropped below
    }
  };
  auto full = [&] { return p.maxMoves > 0 && static_cast<int>(out.moves.size()) >= p.maxMoves; };
  const std::vector<double> fixedScore = fixedScores(s, containers, p);
  const std::vector<double> size = s.unitSizes();
  relocateBlockers(s, containers, p, level, fixedScore, early, full, commit);
  std::vector<bool> stuck(nodes.size(), false);  // maxima with nothing left to give
  // Below a maximum that has nothing to give, a move helps only if it
  // raises the least loaded node: the sources with nothing for it are
  // marked with the round of that node (a new one when it changes, or its
  // score does).
  std::vector<uint32_t> noLift(nodes.size(), 0);
  uint32_t round = 1;
  std::pair<double, size_t> liftFor{-1, State::kNone};
  for (;;) {
    if (full()) {
      out.verdict = "stopped at --max-moves " + std::to_string(p.maxMoves);
      break;
    }
    if (s.spread() <= p.stopSpread) {
      out.verdict = "balanced: spread " + pct(s.spread()) + " <= " + pct(p.stopSpread);
      break;
    }
    if (*s.byScore().begin() != liftFor) {
      liftFor = *s.byScore().begin();
      ++round;
    }
    // The most loaded node that still has something to give.
    size_t src = State::kNone;
    for (auto it = s.byScore().rbegin(); it != s.byScore().rend(); ++it)
      if (!stuck[it->second] && noLift[it->second] != round) {
        src = it->second;
        break;
      }
    if (src == State::kNone) {
      const size_t top = s.byScore().rbegin()->second;
      out.verdict = "spread " + pct(s.spread()) + ": the most loaded node, " + nodes[top].name + " (" +
                    pct(s.scoreOf(top)) +
                    "), has nothing that can move (pinned, in cooldown, or no node can take it without "
                    "overshooting or breaking a constraint)";
      break;
    }
    // Below the most loaded node (which has nothing to give), a move helps
    // only if it raises the least loaded one.
    const size_t onlyTarget = src == s.byScore().rbegin()->second ? State::kNone : s.byScore().begin()->second;
    const double srcScore = s.scoreOf(src);
    // The highest score among the nodes other than the source and a
    // target: a move may not lift its target above it and the source.
    auto highestOther = [&](size_t t) {
      for (auto it = s.byScore().rbegin(); it != s.byScore().rend(); ++it)
        if (it->second != src && it->second != t) return it->first;
      return 0.0;
    };
    auto lowestOther = [&](size_t t, double otherwise) {
      for (const auto& [sc, n] : s.byScore())
        if (n != src && n != t) return sc;
      return otherwise;
    };
    std::vector<size_t> movable;
    for (size_t c : s.members(src)) {
      if (moved[c] >= kMaxHops) continue;
      if (std::string why = frozenOut(containers[c], p); !why.empty()) {
        skip(c, why);
        continue;
      }
      movable.push_back(c);
    }
    size_t bestC = State::kNone, bestT = State::kNone;
    double bestValue = 0;
    bool bestInBand = true;  // a move that covers part of the way is worth more than any that does not
    // Weighs moving c from the source to t (at score sc), keeps the best.
    auto consider = [&](size_t c, size_t t, double sc) {
      const double fromAfter = srcScore - s.weight(c, src);
      const double toAfter = sc + s.weight(c, t);
      // Never where it would be a blocker (see relocateBlockers()), unless
      // it is one where it is: its target could never come down to the
      // level again.
      if (fixedScore[t] + s.weight(c, t) > std::max(level, fixedScore[src] + s.weight(c, src))) return;
      // Overshoot: the target ends where the source was or above, or it
      // becomes the cluster's new maximum, unless that move brings the
      // cluster within the stop threshold (then no later run acts on it).
      if (toAfter >= srcScore) return;
      const double otherMax = highestOther(t);
      if (toAfter > std::max(fromAfter, otherMax)) {
        const double lo = std::min({lowestOther(t, fromAfter), fromAfter, toAfter});
        if ((toAfter - lo) / toAfter > p.stopSpread) return;
      }
      // A move must bring the higher of its pair down. What it buys: how
      // much of the way to the band [(1 - stop) * level, level] it covers,
      // the source's part above the level it sheds plus the target's part
      // below the band's floor it fills, per byte moved plus the move's
      // own cost. Work the source sheds below the level, or that lifts
      // the target above the floor, buys nothing: more work moves than
      // the band needs. Both parts count in resources (unitSizes()), as
      // the level does: a point of a large node's score stands for more
      // work than one of a small node's, and the band is reached when
      // the work above it has filled what lies below it. (Counted in
      // score, the plan moved 3-12% more bytes on eleven 100-node
      // clusters, and its 1,000-node plan 3% more.)
      const double gain = srcScore - std::max(fromAfter, toAfter);
      const double floor = (1 - p.stopSpread) * level;
      const double covered = (std::max(0.0, srcScore - level) - std::max(0.0, fromAfter - level)) * size[src] +
                             (std::max(0.0, floor - sc) - std::max(0.0, floor - toAfter)) * size[t];
      if (gain < kMinGain) return;
      // (When the cluster is already inside the band's reach, the level
      // was estimated high: the pair's top alone decides.)
      const double cost = static_cast<double>(containers[c].memBytes) + kMoveCostBytes;
      const bool inBand = covered <= 0;
      if (bestInBand < inBand) return;
      const double value = (inBand ? gain : covered) / cost;
      if (inBand < bestInBand || value > bestValue) {
        bestInBand = inBand;
        bestValue = value;
        bestC = c;
        bestT = t;
      }
    };
    // The least loaded nodes first: they are where work should go.
    for (size_t c : movable) {
      int tried = 0;
      int examined = 0;
      for (const auto& [sc, t] : s.candidates(c)) {
        if (t == src) continue;
        if (sc >= srcScore || tried >= kTargetsTried || ++examined > kNodesExamined) break;
        if (onlyTarget != State::kNone && t != onlyTarget) break;
        if (!s.fits(c, t)) continue;  // an unfit node is not a try: look further
        ++tried;
        consider(c, t, sc);  // when it overshoots, a larger node further up may still take it
      }
    }
    // The cluster's maximum with nothing for the least loaded nodes (its
    // containers are large for them): every node that could take one,
    // where a container weighs least (a node with more CPUs and memory
    // than the least loaded ones, a little higher up) or where no node
    // ends higher than before. Rare (a node of a few large containers), so
    // the wider search costs little.
    if (bestC == State::kNone && onlyTarget == State::kNone)
      for (size_t c : movable)
        for (const auto& [sc, t] : s.candidates(c)) {
          if (sc >= srcScore - kMinGain) break;
          if (t != src && s.fits(c, t)) consider(c, t, sc);
        }
    if (bestC == State::kNone && onlyTarget != State::kNone) {
      noLift[src] = round;
      continue;
    }
    if (bestC == State::kNone) {
      for (size_t c : s.members(src))
        if (!moved[c]) skip(c, "no node can take it without overshooting or breaking a constraint");
      // (a container placed here by this plan is not skipped: it moves.)
      stuck[src] = true;
      continue;
    }
    commit(bestC, bestT);
  }
  // Moves that came back to their node are no moves.
  std::vector<Move> kept;
  for (auto& m : out.moves) {
    if (!m.to.empty()) {
      kept.push_back(std::move(m));
      continue;
    }
    out.bytes -= m.memBytes;
  }
  out.moves = std::move(kept);
  dropNeedless(s, out);
  out.spreadAfter = s.spread();
  end->lowest = s.byScore().empty() ? 0 : s.byScore().begin()->first;
  end->leftOnTop.clear();
  if (out.spreadAfter > p.stopSpread && !full() && !s.byScore().empty())
    for (size_t c : s.members(s.byScore().rbegin()->second))
      if (frozenOut(containers[c], p).empty()) end->leftOnTop.push_back(c);
  return out;
}

}  // namespace

Plan plan(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const Params& p) {
  const State s(nodes, containers, p);
  if (s.spread() <= p.startSpread) {
    Plan out;
    out.spreadBefore = out.spreadAfter = s.spread();
    out.verdict = "balanced: spread " + pct(out.spreadBefore) + " is within the threshold of " + pct(p.startSpread);
    return out;
  }
  // The level is an estimate, and which containers will be too large to
  // move late is a guess. When a plan ends above the stop threshold with
  // its maximum stuck, plan again: with the band its least loaded node
  // allows (lowest / (1 - stop)) as the level when that is lower, and the
  // containers left on that maximum moved first, while the least loaded
  // nodes still have room. A pass or two; the best is kept.
  double level = s.balanceLevel(p.stopSpread);
  std::vector<bool> early(containers.size(), false);
  PassEnd end;
  Plan best = planAt(nodes, containers, p, level, early, &end);
  for (int pass = 1; pass < kPasses && best.spreadAfter > p.stopSpread && !capped(best, p); ++pass) {
    bool changed = false;
    for (size_t c : end.leftOnTop) changed |= !early[c], early[c] = true;
    const double band = end.lowest / (1 - p.stopSpread);
    if (band < level) level = band, changed = true;
    if (!changed) break;  // nothing newly in the way
    Plan next = planAt(nodes, containers, p, level, early, &end);
    if (next.spreadAfter < best.spreadAfter) best = std::move(next);
  }
  return best;
}

Plan drain(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const std::string& node,
           const Params& p) {
  std::vector<NodeLoad> cordoned = nodes;
  for (auto& n : cordoned)
    if (n.name == node) n.takesWork = false;
  State s(cordoned, containers, p);
  Plan out;
  out.spreadBefore = s.spread();
  const size_t from = s.nodeOf(node);
  if (from == State::kNone) {
    out.verdict = "no node " + node;
    return out;
  }
  // The largest first: they are the hardest to fit.
  std::vector<size_t> order = s.members(from);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return containers[a].memBytes > containers[b].memBytes; });
  for (size_t c : order) {
    if (containers[c].pinned) {
      out.skipped.push_back({containers[c].name, node, "pinned"});
      continue;
    }
    size_t target = State::kNone;
    std::string why = containers[c].devices.empty() ? "no other node takes work"
                                                    : "no other node offers " + containers[c].devices.front();
    for (const auto& [sc, t] : s.candidates(c)) {
      if (std::string u = s.unfit(c, t); !u.empty()) {
        if (why == "no other node takes work" || u.find("offer") == std::string::npos) why = u;
        continue;
      }
      target = t;
      break;
    }
    if (target == State::kNone) {
      out.skipped.push_back({containers[c].name, node, "cannot move: " + why});
      continue;
    }
    out.moves.push_back(s.move(c, target));
    out.bytes += containers[c].memBytes;
  }
  out.spreadAfter = s.spread();
  out.verdict = out.skipped.empty() ? node + " can be emptied"
                                    : std::to_string(out.skipped.size()) + " container(s) must stay on " + node;
  return out;
}

std::string place(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers,
                  const ContainerLoad& newcomer, const Params& p, std::string* why) {
  std::vector<ContainerLoad> all = containers;
  all.push_back(newcomer);
  all.back().node.clear();  // not placed yet
  State s(nodes, all, p);
  const size_t c = all.size() - 1;
  std::string first = newcomer.devices.empty() ? "" : "no node offers " + newcomer.devices.front();
  for (const auto& [sc, t] : s.candidates(c)) {
    std::string u = s.unfit(c, t);
    if (u.empty()) return nodes[t].name;
    if (first.empty()) first = u;
  }
  if (why)
    *why = first.empty()                    ? "no node takes work"
           : first.rfind("no node", 0) == 0 ? first
                                            : "no node fits: e.g. " + first;
  return "";
}

}  // namespace lxmig::sched
