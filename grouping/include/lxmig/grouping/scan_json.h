// The wire and script form of a scan: what `lxmig groups --json` prints and
// what an agent returns for a remote node. Tables and Graphviz are rendered
// from this form by the CLI.
//
// {"node": "n1", "duration_ms": 12, "processes": 140, "unreadable": [...],
//  "groups": [{"id": "g2a.1f", "verdict": "single-container", "containers": ["web"], "why": "",
//              "action": "none needed",
//              "members": [{"pid": 42, "ppid": 1, "comm": "nginx", "container": "web", "net_sockets": [...]}],
//              "edges": [{"kind": "pipe", "object": "pipe:[123]", "path": "", "crosses_container": false,
//                         "a": {"pid": 42, "how": "fd 3"}, "b": {"pid": 43, "how": "fd 4"}}]}]}
//
// Written directly as text (one group per line), not through a JSON
// document: a node with 10,000 processes has thousands of groups, and
// building a document for them cost more than a quarter of a full scan.
// Bytes that are not UTF-8 (process names and paths may hold any) are
// written as U+FFFD, so the output is always valid JSON.
#pragma once

#include <string>
#include <vector>

#include "lxmig/grouping/ipc_graph.h"

namespace lxmig::grouping {

std::string toJsonText(const Scan& scan, const std::vector<Group>& groups, const std::string& node);

// What to show: every group (all), the groups of one container, the group
// of one pid, or (none set) the groups that involve a container.
struct Selection {
  bool all = false;
  pid_t pid = 0;
  std::string container;
};

// Scans this node, selects, and returns the JSON text. NotFound for an
// unknown pid or container.
Result<std::string> scanAndSelect(const Selection& sel, const std::string& node);

}  // namespace lxmig::grouping
