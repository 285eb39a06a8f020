// Components, verdicts and lookups over a scanned graph (pure).
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <set>
#include <unordered_map>

#include "lxmig/grouping/ipc_graph.h"

namespace lxmig::grouping {
namespace {

class UnionFind {
 public:
  size_t add(pid_t pid) {
    auto [it, fresh] = index_.try_emplace(pid, parent_.size());
    if (fresh) parent_.push_back(parent_.size());
    return it->second;
  }
  size_t find(size_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void unite(pid_t a, pid_t b) {
    size_t ra = find(add(a)), rb = find(add(b));
    if (ra != rb) parent_[std::max(ra, rb)] = std::min(ra, rb);
  }
  const std::unordered_map<pid_t, size_t>& index() const { return index_; }

 private:
  std::unordered_map<pid_t, size_t> index_;
  std::vector<size_t> parent_;
};

std::string describe(const Edge& e, const std::map<pid_t, Process>& procs) {
  auto where = [&](pid_t p) {
    auto it = procs.find(p);
    std::string c = it == procs.end() || it->second.container.empty() ? "host" : it->second.container;
    return std::to_string(p) + " (" + c + ")";
  };
  return e.kind + (e.path.empty() ? "" : " " + e.path) + " between " + where(e.a.pid) + " and " + where(e.b.pid);
}

// The command that makes a group movable as one (Group::action).
// `firstHostMember`: its lowest host pid, for groups that mix both.
std::string actionFor(const Group& g, pid_t firstHostMember) {
  if (g.verdict == "single-container") return "none needed";
  if (g.verdict == "host") return "lxmig adopt --group " + g.id;
  std::vector<std::string> names;
  for (const auto& c : g.containers)
    if (!c.empty()) names.push_back(c);
  if (firstHostMember > 0) names.push_back("adopted-" + std::to_string(firstHostMember));
  std::string merge = "lxmig merge";
  for (const auto& n : names) merge += " " + n;
  merge += " --name " + names.front();
  if (firstHostMember <= 0) return merge;
  return "lxmig adopt --pid " + std::to_string(firstHostMember) + ", then " + merge;
}

}  // namespace

std::vector<Group> buildGroups(const std::map<pid_t, Process>& processes, std::vector<Edge>& edges) {
  auto containerOf = [&](pid_t p) -> std::string {
    auto it = processes.find(p);
    return it == processes.end() ? std::string() : it->second.container;
  };
  UnionFind uf;
  for (auto& e : edges) {
    e.crossesContainer = containerOf(e.a.pid) != containerOf(e.b.pid);
    uf.unite(e.a.pid, e.b.pid);
  }
  std::map<size_t, Group> byRoot;
  for (const auto& [pid, idx] : uf.index()) byRoot[uf.find(idx)].members.push_back(pid);
  for (const auto& e : edges) byRoot[uf.find(uf.index().at(e.a.pid))].edges.push_back(e);

  std::vector<Group> out;
  for (auto& [root, g] : byRoot) {
    std::sort(g.members.begin(), g.members.end());
    // Id from the oldest member: stable as long as that process lives.
    pid_t oldest = g.members.front();
    uint64_t oldestStart = UINT64_MAX;
    std::set<std::string> containers;
    for (pid_t p : g.members) {
      auto it = processes.find(p);
      uint64_t start = it == processes.end() ? UINT64_MAX - 1 : it->second.startTime;
      if (start < oldestStart || (start == oldestStart && p < oldest)) {
        oldest = p;
        oldestStart = start;
      }
      containers.insert(containerOf(p));
    }
    char id[64];
    std::snprintf(id, sizeof id, "g%x.%llx", static_cast<unsigned>(oldest),
                  static_cast<unsigned long long>(oldestStart == UINT64_MAX - 1 ? 0 : oldestStart));
    g.id = id;
    g.containers.assign(containers.begin(), containers.end());
    if (containers.size() > 1) {
      g.verdict = "spans-containers";
      int shown = 0;
      for (const auto& e : g.edges) {
        if (!e.crossesContainer) continue;
        if (shown++ < 3) g.why += (g.why.empty() ? "" : "; ") + describe(e, processes);
      }
      if (shown > 3) g.why += "; and " + std::to_string(shown - 3) + " more";
    } else {
      g.verdict = containers.begin()->empty() ? "host" : "single-container";
    }
    pid_t firstHost = 0;
    for (pid_t p : g.members)
      if (containerOf(p).empty() && (firstHost == 0 || p < firstHost)) firstHost = p;
    g.action = actionFor(g, g.verdict == "spans-containers" ? firstHost : 0);
    out.push_back(std::move(g));
  }
  std::sort(out.begin(), out.end(),
            [](const Group& a, const Group& b) { return a.members.front() < b.members.front(); });
  return out;
}

Result<Group> groupOf(const Scan& scan, pid_t pid) {
  if (!scan.processes.count(pid)) return notFound("no process " + std::to_string(pid));
  for (const auto& g : scan.groups)
    if (std::binary_search(g.members.begin(), g.members.end(), pid)) return g;
  Group alone;
  const auto& p = scan.processes.at(pid);
  char id[64];
  std::snprintf(id, sizeof id, "g%x.%llx", static_cast<unsigned>(pid), static_cast<unsigned long long>(p.startTime));
  alone.id = id;
  alone.verdict = "alone";
  alone.members = {pid};
  alone.containers = {p.container};
  alone.action = p.container.empty() ? "lxmig adopt --pid " + std::to_string(pid) : "none needed";
  return alone;
}

std::string movesAloneProblem(const Scan& scan, const std::string& container) {
  auto groups = groupsOfContainer(scan, container);
  if (!groups.ok()) return "";
  std::string out;
  for (const auto& g : *groups) {
    if (g.verdict != "spans-containers") continue;
    std::string partners;
    for (const auto& c : g.containers)
      if (c != container)
        partners += (partners.empty() ? "" : ", ") + (c.empty() ? "processes of the host" : "container " + c);
    out += (out.empty() ? "" : "; ") + ("`" + container + "` shares IPC with " + partners + " (group " + g.id + ": " +
                                        g.why + "); moving it alone would cut that: " + g.action);
  }
  for (char& c : out)  // one line: paths and process names may hold any byte
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

Result<std::vector<Group>> groupsOfContainer(const Scan& scan, const std::string& container) {
  bool any = false;
  for (const auto& [pid, p] : scan.processes) any |= p.container == container;
  if (!any) return notFound("no container `" + container + "` among this node's processes");
  std::vector<Group> out;
  for (const auto& g : scan.groups)
    if (std::find(g.containers.begin(), g.containers.end(), container) != g.containers.end()) out.push_back(g);
  return out;
}

}  // namespace lxmig::grouping
