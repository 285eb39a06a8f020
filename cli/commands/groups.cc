// `lxmig groups`: IPC groups, processes that must live and move together.
// Without --node the CLI scans this machine itself (no agent needed);
// with it the node's agent scans. Both give the JSON of
// grouping/scan_json.h, printed as it is or rendered.
#include <iostream>

#include "commands/command.h"
#include "lxmig/grouping/scan_json.h"
#include "manual.h"
#include "output/groups.h"

namespace lxmig::cli {
namespace {

struct GroupsOptions {
  bool all = false;
  bool dot = false;
  int pid = 0;
  std::string container;
};

Result<std::string> scan(const Globals& g, Connector& conn, const GroupsOptions& o) {
  if (g.node.empty()) {
    grouping::Selection sel;
    sel.all = o.all;
    sel.pid = o.pid;
    sel.container = o.container;
    return grouping::scanAndSelect(sel, localHostName());
  }
  v1::GroupsRequest rq;
  rq.set_node(g.node);
  rq.set_all(o.all);
  rq.set_pid(o.pid);
  rq.set_container(o.container);
  LXMIG_ASSIGN_OR_RETURN(auto rp, call(conn, g.node, &v1::Agent::Stub::Groups, rq, 60));
  return std::move(*rp.mutable_scan_json());
}

int groups(const Globals& g, Connector& conn, const GroupsOptions& o) {
  auto text = scan(g, conn, o);
  if (!text.ok()) return fail("groups", text.status());
  if (g.json) {
    std::cout << *text;
    return 0;
  }
  auto parsed = nlohmann::json::parse(*text, nullptr, false);
  if (parsed.is_discarded()) return fail("groups", internalError("malformed scan from the scanner or agent"));
  std::cout << (o.dot ? renderGroupsDot(parsed) : renderGroupsTable(parsed));
  return 0;
}

}  // namespace

Verb addGroups(CLI::App& app) {
  auto* cmd = app.add_subcommand("groups", "IPC groups: processes that must live and move together");
  withExamples(cmd, {"lxmig groups --all", "lxmig groups --container web --json",
                     "lxmig groups --all --dot | dot -Tsvg > groups.svg"});
  auto o = std::make_shared<GroupsOptions>();
  auto* all = cmd->add_flag("--all", o->all, "every group, also those only on the host");
  auto* pid = cmd->add_option("--pid", o->pid, "the group holding this pid")->check(CLI::Range(1, 4194304));
  auto* container = cmd->add_option("--container", o->container, "the groups touching this container");
  all->excludes(pid)->excludes(container);
  pid->excludes(container);
  cmd->add_flag("--dot", o->dot, "Graphviz output (processes, labelled IPC edges, containers as clusters)");
  return {cmd, [o](const Globals& g, Connector& conn) { return groups(g, conn, *o); }};
}

}  // namespace lxmig::cli
