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
  size_t nodeOf(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? kNone : it->second;
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

}  // namespace

double score(const NodeLoad& n, double cpu, uint64_t memBytes) {
  const double cpuFrac = n.cpus > 0 ? cpu / n.cpus : 1;
  const double memFrac = n.memTotalBytes > 0 ? static_cast<double>(memBytes) / n.memTotalBytes : 1;
  return (cpuFrac + memFrac) / 2;
}

Plan plan(const std::vector<NodeLoad>& nodes, const std::vector<ContainerLoad>& containers, const Params& p) {
  State s(nodes, containers, p);
  Plan out;
  out.spreadBefore = s.spread();
  if (out.spreadBefore <= p.startSpread) {
    out.spreadAfter = out.spreadBefore;
    out.verdict = "balanced: spread " + pct(out.spreadBefore) + " is within the threshold of " + pct(p.startSpread);
    return out;
  }
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
  std::unordered_set<size_t> stuck;  // sources with nothing left to give
  for (;;) {
    if (p.maxMoves > 0 && static_cast<int>(out.moves.size()) >= p.maxMoves) {
      out.verdict = "stopped at --max-moves " + std::to_string(p.maxMoves);
      break;
    }
    if (s.spread() <= p.stopSpread) {
      out.verdict = "balanced: spread " + pct(s.spread()) + " <= " + pct(p.stopSpread);
      break;
    }
    // The most loaded node that still has something to give.
    size_t src = State::kNone;
    for (auto it = s.byScore().rbegin(); it != s.byScore().rend(); ++it)
      if (!stuck.count(it->second)) {
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
    size_t bestC = State::kNone, bestT = State::kNone;
    double bestValue = 0;
    for (size_t c : s.members(src)) {
      if (moved[c] >= kMaxHops) continue;
      if (std::string why = frozenOut(containers[c], p); !why.empty()) {
        skip(c, why);
        continue;
      }
      const double fromAfter = srcScore - s.weight(c, src);
      int tried = 0;
      int examined = 0;
      for (const auto& [sc, t] : s.candidates(c)) {
        if (t == src) continue;
        if (sc >= srcScore || tried >= kTargetsTried || ++examined > kNodesExamined) break;
        if (onlyTarget != State::kNone && t != onlyTarget) break;
        if (!s.unfit(c, t).empty()) continue;  // an unfit node is not a try: look further
        ++tried;
        const double toAfter = sc + s.weight(c, t);
        // Overshoot: the target ends where the source was or above, or it
        // becomes the cluster's new maximum, unless that move brings the
        // cluster within the stop threshold (then no later run acts on
        // it). A larger node further up may still take it: look on.
        if (toAfter >= srcScore) continue;
        const double otherMax = highestOther(t);
        if (toAfter > std::max(fromAfter, otherMax)) {
          const double lo = std::min({lowestOther(t, fromAfter), fromAfter, toAfter});
          if ((toAfter - lo) / toAfter > p.stopSpread) continue;
        }
        // What the move buys: how far the higher of the pair comes down,
        // per byte moved plus the move's own cost. (Not the pair's total:
        // a container weighs more on a smaller node, and moving work from
        // a large busy node to a small idle one is still the point.)
        const double gain = srcScore - std::max(fromAfter, toAfter);
        const double value = gain / (static_cast<double>(containers[c].memBytes) + kMoveCostBytes);
        if (gain >= kMinGain && value > bestValue) {
          bestValue = value;
          bestC = c;
          bestT = t;
        }
      }
    }
    if (bestC == State::kNone) {
      for (size_t c : s.members(src))
        if (!moved[c]) skip(c, "no node can take it without overshooting or breaking a constraint");
      // (a container placed here by this plan is not skipped: it moves.)
      stuck.insert(src);
      continue;
    }
    // A container this plan already placed moves on: its one move gets
    // the new target (or is dropped when it goes back where it was), so
    // the plan still moves every container once at most.
    Move m = s.move(bestC, bestT);
    ++moved[bestC];
    if (planned[bestC] == kNoMove) {
      planned[bestC] = out.moves.size();
      out.moves.push_back(std::move(m));
      out.bytes += containers[bestC].memBytes;
    } else {
      Move& first = out.moves[planned[bestC]];
      first.to = m.to;
      first.toBefore = m.toBefore;
      first.toAfter = m.toAfter;
      first.fromAfter = std::min(first.fromAfter, m.fromAfter);
      if (first.to == first.from) first.to.clear();  // dropped below
    }
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
  out.spreadAfter = s.spread();
  return out;
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
