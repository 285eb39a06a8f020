// `lxmig merge A B [...] [--name A] [--dry-run]`: the processes of
// containers of one node continued inside one of them (migration/merge.h),
// so that a group that spans containers moves as one. What cannot be
// merged is refused before anything is touched, one line per reason, and
// the command exits 1; a failure after a dump leaves both containers
// running as before (report "aborted", exit 1).
#include <unistd.h>

#include <cstdio>

#include "commands/command.h"
#include "manual.h"
#include "output/json.h"
#include "output/progress.h"
#include "output/report.h"

namespace lxmig::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> names;
  std::string into;
  bool dryRun = false;
};

int merge(const Globals& g, Connector& conn, const MergeOptions& o) {
  const std::string what = "merge";
  const std::string kept = o.into.empty() ? o.names.front() : o.into;
  auto where = conn.nodeOf(o.names.front(), g.node);
  if (!where.ok()) return fail(what, where.status());
  // Served by the agent of the containers' node: this machine's asks it
  // over the peer port when it is another (accept_forwarded there).
  auto t = conn.forNode(*where);
  if (!t.ok()) return fail(what, t.status());
  v1::MergeRequest rq;
  for (const auto& n : o.names) rq.add_containers(n);
  rq.set_name(kept);
  rq.set_dry_run(o.dryRun);
  rq.set_node(t->node);
  // Dumps and restores of large containers take their time.
  Result<v1::MergeReply> r = okStatus();
  {
    StepProgressLine line(::isatty(2) && !g.quiet && !g.json);
    auto ev = callStep(*t, &v1::Agent::Stub::Merge, rq, 900, [&](const v1::Progress& p) { line(p); });
    if (!ev.ok()) return fail(what, ev.status());
    if (!ev->has_merged()) return fail(what, internalError("the agent answered merge with another reply"));
    r = ev->merged();
  }
  const bool refused = r->refusals_size() > 0;
  bool committed = r->reports_size() > 0;
  for (const auto& rep : r->reports()) committed = committed && rep.result() == v1::RESULT_COMMITTED;
  if (g.json) {
    nlohmann::json j = {{"name", r->name()},
                        {"ip", r->ip()},
                        {"extra_ips", r->extra_ips()},
                        {"pids", std::vector<int>(r->pids().begin(), r->pids().end())},
                        {"refusals", std::vector<std::string>(r->refusals().begin(), r->refusals().end())},
                        {"reports", nlohmann::json::array()}};
    for (const auto& rep : r->reports()) j["reports"].push_back(reportJson(rep));
    printJson(j);
  } else {
    for (const auto& why : r->refusals()) std::fprintf(stderr, "lxmig: merge refused: %s\n", why.c_str());
    if (!refused && o.dryRun) {
      std::printf("would merge %zu containers into `%s` (%d processes join it, pids inside kept)\n", o.names.size(),
                  r->name().c_str(), r->pids_size());
    } else if (!refused) {
      for (const auto& rep : r->reports())
        if (!g.quiet || rep.result() != v1::RESULT_COMMITTED) printReport(rep, false);
      if (committed && !g.quiet) {
        std::string pids;
        for (int p : r->pids()) pids += (pids.empty() ? "" : " ") + std::to_string(p);
        std::string ips = r->ip();
        for (const auto& a : r->extra_ips()) ips += ", " + a;
        std::printf("%s running on %s at %s: %d processes joined it, pids inside %s\n", r->name().c_str(),
                    where->c_str(), ips.c_str(), r->pids_size(), pids.c_str());
      }
    }
  }
  if (refused) return 1;
  if (!o.dryRun && !committed) {
    std::string why = "no container was merged";
    for (const auto& rep : r->reports())
      if (rep.result() != v1::RESULT_COMMITTED) why = rep.container() + ": " + rep.error();
    return failWith(what, why + "; it runs as before");
  }
  return 0;
}

}  // namespace

Verb addMerge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "continue the processes of containers of one node inside one of them");
  withExamples(cmd, {"lxmig merge consumer producer --name consumer --dry-run",
                     "lxmig merge consumer producer --name consumer", "lxmig migrate consumer --to n2"});
  auto o = std::make_shared<MergeOptions>();
  cmd->add_option("containers", o->names, "the containers to merge, on one node")->required()->expected(2, 64);
  cmd->add_option("--name", o->into,
                  "the one the others join (one of them, default the first): it keeps running, the others go");
  cmd->add_flag("--dry-run", o->dryRun, "check and show what would be merged, touch nothing");
  return {cmd, [o](const Globals& g, Connector& conn) { return merge(g, conn, *o); }};
}

}  // namespace lxmig::cli
