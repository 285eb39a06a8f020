#include "output/groups.h"

#include <cstdio>
#include <map>
#include <set>

#include "lxmig/base/grammar.h"

namespace lxmig::cli {
namespace {

// A process's name, a path or a socket's summary comes from the processes
// scanned: shown with its control characters as \xNN.
std::string text(const nlohmann::json& j) { return printable(j.get<std::string>()); }

std::string dotQuote(const std::string& raw) {
  const std::string s = printable(raw);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string containerLabel(const std::string& c) { return c.empty() ? "host" : printable(c); }

}  // namespace

std::string renderGroupsTable(const nlohmann::json& scan) {
  std::string out;
  char line[512];
  const auto& groups = scan["groups"];
  std::snprintf(line, sizeof line, "node %s: %zu group(s) among %d processes, scanned in %lld ms\n",
                printable(scan.value("node", "")).c_str(), groups.size(), scan.value("processes", 0),
                static_cast<long long>(scan.value("duration_ms", 0)));
  out += line;
  for (const auto& g : groups) {
    std::string containers;
    for (const auto& c : g["containers"]) containers += (containers.empty() ? "" : ",") + containerLabel(c);
    std::snprintf(line, sizeof line, "\n%-18s %-17s %zu members  containers: %s\n", text(g["id"]).c_str(),
                  text(g["verdict"]).c_str(), g["members"].size(), containers.c_str());
    out += line;
    if (!g["why"].get<std::string>().empty()) out += "  why: " + text(g["why"]) + "\n";
    if (g.contains("action")) out += "  to move it as one: " + text(g["action"]) + "\n";
    std::snprintf(line, sizeof line, "  %-8s %-8s %-16s %-14s %s\n", "PID", "PPID", "COMM", "CONTAINER", "NETWORK");
    out += line;
    for (const auto& m : g["members"]) {
      std::string net;
      for (const auto& s : m["net_sockets"]) net += (net.empty() ? "" : "; ") + text(s);
      std::snprintf(line, sizeof line, "  %-8d %-8d %-16s %-14s %s\n", m["pid"].get<int>(), m["ppid"].get<int>(),
                    text(m["comm"]).c_str(), containerLabel(m["container"]).c_str(), net.c_str());
      out += line;
    }
    for (const auto& e : g["edges"]) {
      std::string path = text(e["path"]);
      std::snprintf(line, sizeof line, "  %-18s %d %s <-> %d %s  %s%s%s\n", text(e["kind"]).c_str(),
                    e["a"]["pid"].get<int>(), text(e["a"]["how"]).c_str(), e["b"]["pid"].get<int>(),
                    text(e["b"]["how"]).c_str(), text(e["object"]).c_str(), path.empty() ? "" : " ", path.c_str());
      out += line;
      if (e["crosses_container"].get<bool>()) out += "  ^ crosses-container\n";
    }
  }
  if (!scan["unreadable"].empty()) {
    out += "\nnot readable during the scan:\n";
    for (const auto& u : scan["unreadable"]) out += "  " + text(u) + "\n";
  }
  return out;
}

std::string renderGroupsDot(const nlohmann::json& scan) {
  std::string out = "graph lxmig_groups {\n  graph [label=" + dotQuote("IPC groups of " + scan.value("node", "")) +
                    ", fontname=sans];\n  node [shape=box, fontname=sans];\n  edge [fontname=sans, fontsize=10];\n";
  std::map<std::string, std::vector<std::string>> byContainer;  // container -> node lines
  std::set<int> seen;
  for (const auto& g : scan["groups"])
    for (const auto& m : g["members"]) {
      int pid = m["pid"].get<int>();
      if (!seen.insert(pid).second) continue;
      byContainer[m["container"].get<std::string>()].push_back(
          "p" + std::to_string(pid) + " [label=" + dotQuote(std::to_string(pid) + " " + m["comm"].get<std::string>()) +
          "];");
    }
  int n = 0;
  for (const auto& [c, nodes] : byContainer) {
    out += "  subgraph cluster_" + std::to_string(n++) + " {\n    label=" + dotQuote(containerLabel(c)) +
           ";\n    style=" + (c.empty() ? "dashed" : "rounded") + ";\n";
    for (const auto& l : nodes) out += "    " + l + "\n";
    out += "  }\n";
  }
  for (const auto& g : scan["groups"])
    for (const auto& e : g["edges"]) {
      std::string label = e["kind"].get<std::string>();
      if (!e["path"].get<std::string>().empty()) label += " " + e["path"].get<std::string>();
      out += "  p" + std::to_string(e["a"]["pid"].get<int>()) + " -- p" + std::to_string(e["b"]["pid"].get<int>()) +
             " [label=" + dotQuote(label) + (e["crosses_container"].get<bool>() ? ", color=red, penwidth=2" : "") +
             "];\n";
    }
  return out + "}\n";
}

}  // namespace lxmig::cli
