// `lxmig logs [--migration ID] [--limit N] [--level L]`: the recent log
// lines of an agent (--node, default the local one), as it keeps them in
// memory; under systemd the same lines are in the journal with their
// fields (journalctl -u lxmigd LXMIG_MIGRATION=ID).
#include <iostream>

#include "commands/command.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct LogsOptions {
  std::string migration;
  unsigned limit = 200;
  std::string level = "info";
};

int logs(const Globals& g, Connector& conn, const LogsOptions& o) {
  const std::string what = "logs";
  if (!o.migration.empty())
    if (Status st = checkMigrationId(o.migration); !st.ok()) return fail(what, st);
  v1::LogsRequest rq;
  rq.set_node(g.node);
  rq.set_migration(o.migration);
  rq.set_limit(o.limit);
  rq.set_level(o.level);
  auto rp = call(conn, g.node, &v1::Agent::Stub::Logs, rq, 15);
  if (!rp.ok()) return fail(what, rp.status());
  if (g.json) {
    nlohmann::json lines = nlohmann::json::array();
    for (const auto& l : rp->lines())
      lines.push_back({{"at_ms", l.at_ms()},
                       {"level", l.level()},
                       {"category", l.category()},
                       {"text", l.text()},
                       {"migration", l.migration()},
                       {"container", l.container()}});
    printJson({{"node", rp->node()}, {"lines", lines}});
    return 0;
  }
  for (const auto& l : rp->lines()) {
    std::string about;
    if (!l.migration().empty()) about += " " + l.migration();
    if (!l.container().empty()) about += " " + l.container();
    // The agent's text with control characters shown: one line each.
    const std::string text = quote(l.text(), 4096);
    std::cout << log::isoTime(l.at_ms()) << " " << rp->node() << " " << l.level()
              << (about.empty() ? "" : " [" + about.substr(1) + "]") << " " << l.category() << ": "
              << text.substr(1, text.size() - 2) << "\n";
  }
  return 0;
}

}  // namespace

Verb addLogs(CLI::App& app) {
  auto* cmd = app.add_subcommand("logs", "an agent's recent log lines (--node, default the local agent)");
  withExamples(cmd, {"lxmig logs", "lxmig --node n2 logs --level warn",
                     "lxmig logs --migration 3f2a9c0d1e4b5a6f   # on the source, then --node TARGET"});
  auto o = std::make_shared<LogsOptions>();
  cmd->add_option("--migration", o->migration, "only lines about this migration (its id)");
  cmd->add_option("--limit", o->limit, "the last this many lines (default 200)")->check(CLI::Range(1u, 10000u));
  cmd->add_option("--level", o->level, "at least this level: debug, info (default), warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  return {cmd, [o](const Globals& g, Connector& conn) { return logs(g, conn, *o); }};
}

}  // namespace lxmig::cli
