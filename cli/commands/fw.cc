// `lxmig fw add|list|del NAME`: a container's firewall rules for traffic to
// it, in nft syntax; they move with the container.
#include <cstdio>
#include <iostream>

#include "commands/command.h"
#include "manual.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

struct FwOptions {
  CLI::App* add = nullptr;
  CLI::App* list = nullptr;
  CLI::App* del = nullptr;
  std::string name;
  std::vector<std::string> rule;
  uint64_t handle = 0;
};

int fw(const Globals& g, Connector& conn, const FwOptions& o) {
  const std::string what = "fw " + o.name;
  auto where = conn.nodeOf(o.name, g.node);
  if (!where.ok()) return fail(what, where.status());
  v1::FirewallRequest rq;
  rq.set_node(*where);
  rq.set_container(o.name);
  std::string rule;
  for (const auto& w : o.rule) rule += (rule.empty() ? "" : " ") + w;
  rq.set_op(o.add->parsed()   ? v1::FirewallRequest::ADD
            : o.del->parsed() ? v1::FirewallRequest::DELETE
                              : v1::FirewallRequest::LIST);
  rq.set_rule(rule);
  rq.set_handle(o.handle);
  auto rp = call(conn, *where, &v1::Agent::Stub::Firewall, rq, 30);
  if (!rp.ok()) return fail(what, rp.status());
  if (g.json) {
    nlohmann::json j = {{"container", o.name}, {"node", rp->node()}, {"rules", nlohmann::json::array()}};
    for (const auto& r : rp->rules()) j["rules"].push_back({{"handle", r.handle()}, {"rule", r.text()}});
    if (o.add->parsed()) j["added"] = {{"handle", rp->added().handle()}, {"rule", rp->added().text()}};
    printJson(j);
  } else if (o.list->parsed()) {
    Table table("%-8s %s\n");
    std::cout << table.row({"HANDLE", "RULES FOR TRAFFIC TO " + o.name + " ON " + rp->node()});
    for (const auto& r : rp->rules()) std::cout << table.row({std::to_string(r.handle()), r.text()});
  } else if (!g.quiet) {
    if (o.add->parsed())
      std::printf("%s on %s: rule %llu: %s\n", o.name.c_str(), rp->node().c_str(),
                  static_cast<unsigned long long>(rp->added().handle()), rp->added().text().c_str());
    else
      std::printf("%s on %s: rule %llu deleted\n", o.name.c_str(), rp->node().c_str(),
                  static_cast<unsigned long long>(o.handle));
  }
  return 0;
}

}  // namespace

Verb addFw(CLI::App& app) {
  auto* cmd = app.add_subcommand("fw", "a container's firewall rules (they move with it)");
  withExamples(
      cmd, {"lxmig fw add db tcp dport 5432 ip saddr 10.200.0.0/16 accept", "lxmig fw list db", "lxmig fw del db 7"});
  cmd->require_subcommand(1);
  auto o = std::make_shared<FwOptions>();
  o->add = cmd->add_subcommand("add",
                               "add one rule in nft syntax for traffic to the container, e.g. "
                               "`lxmig fw add web tcp dport 80 accept`");
  o->add->add_option("name", o->name, "container name")->required();
  o->add->add_option("rule", o->rule, "the rule (words are joined)")->required();
  o->list = cmd->add_subcommand("list", "list the container's rules with their handles");
  o->list->add_option("name", o->name, "container name")->required();
  o->del = cmd->add_subcommand("del", "delete a rule by the handle `fw list` shows");
  o->del->add_option("name", o->name, "container name")->required();
  o->del->add_option("handle", o->handle, "the rule's handle, as `fw list` shows it")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return fw(g, conn, *o); }};
}

}  // namespace lxmig::cli
