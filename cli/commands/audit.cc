// `lxmig audit list|show`: the migration history kept by each node's agent.
// A migration is recorded by its source and, as "incoming", by its target:
// the list shows each once, and show prefers the source's full record.
#include <algorithm>
#include <iostream>

#include "commands/command.h"
#include "lxmig/base/files.h"
#include "lxmig/proto/vocabulary.h"
#include "output/json.h"
#include "output/report.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

struct AuditOptions {
  CLI::App* show = nullptr;
  std::string container;
  int limit = 50;
  std::string id;
};

int show(const Globals& g, Connector& conn, const std::vector<std::string>& names, const std::string& id) {
  for (const auto& n : names) {
    auto t = conn.forNode(n);
    if (!t.ok()) return fail("audit show", t.status());
    v1::GetMigrationRequest rq;
    rq.set_node(n);
    rq.set_id(id);
    auto r = call(*t, &v1::Agent::Stub::GetMigration, rq, 10);
    if (r.status().code() == Code::kNotFound) continue;
    if (!r.ok()) return fail("audit show " + id, r.status());
    // Prefer the source's record, which has every phase.
    if (r->mode() == v1::MODE_INCOMING && names.size() > 1 && n != names.back()) continue;
    printReport(*r, g.json);
    return 0;
  }
  return fail("audit show", notFound("no migration `" + id + "` on any node"));
}

int list(const Globals& g, Connector& conn, const std::vector<std::string>& names, const AuditOptions& o) {
  std::vector<v1::MigrationReport> all;
  for (const auto& n : names) {
    v1::ListMigrationsRequest rq;
    rq.set_node(n);
    rq.set_container(o.container);
    rq.set_limit(o.limit);
    auto rp = call(conn, n, &v1::Agent::Stub::ListMigrations, rq, 10);
    if (!rp.ok()) return fail("audit list", rp.status());
    for (const auto& m : rp->migrations())
      if (m.mode() != v1::MODE_INCOMING) all.push_back(m);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.started_ms() > b.started_ms(); });
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& m : all) arr.push_back(reportJson(m));
    printJson({{"migrations", arr}}, 2);
    return 0;
  }
  Table table("%-16s %-16s %-6s %-6s %-10s %10s %10s %10s\n");
  std::cout << table.row({"ID", "CONTAINER", "FROM", "TO", "RESULT", "DOWNTIME", "TOTAL", "BYTES"});
  for (const auto& m : all)
    std::cout << table.row({m.id(), m.container(), m.source(), m.target(), std::string(name(m.result())),
                            formatMs(m.downtime_ms()), formatMs(m.total_ms()), humanBytes(m.bytes())});
  return 0;
}

int audit(const Globals& g, Connector& conn, const AuditOptions& o) {
  std::vector<std::string> names = g.node.empty() ? conn.nodes() : std::vector<std::string>{g.node};
  if (names.empty()) names.push_back("");
  return o.show->parsed() ? show(g, conn, names, o.id) : list(g, conn, names, o);
}

}  // namespace

Verb addAudit(CLI::App& app) {
  auto* cmd = app.add_subcommand("audit", "migration history");
  cmd->require_subcommand(1);
  auto o = std::make_shared<AuditOptions>();
  auto* list = cmd->add_subcommand("list", "recent migrations");
  list->add_option("--container", o->container, "only the migrations of this container");
  list->add_option("--limit", o->limit, "at most this many from each node");
  o->show = cmd->add_subcommand("show", "one migration with its phases");
  o->show->add_option("id", o->id, "migration id, as `audit list` shows it")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return audit(g, conn, *o); }};
}

}  // namespace lxmig::cli
