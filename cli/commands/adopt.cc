// `lxmig adopt (--pid P | --group ID) [--name N] [--bind DIR] [--publish
// PORT] [--dry-run]`: continues a group of this machine's host processes
// inside a new container of its node (migration/adopt.h). What cannot be
// taken is refused before anything is touched, one line per reason, and
// the command exits 1; a failure after the dump leaves the processes
// running on the host as they were (report "aborted", exit 1).
#include <unistd.h>

#include <cstdio>

#include "commands/command.h"
#include "manual.h"
#include "output/json.h"
#include "output/progress.h"
#include "output/report.h"

namespace lxmig::cli {
namespace {

struct AdoptOptions {
  int pid = 0;
  std::string group, name;
  std::vector<std::string> binds, publish;
  bool dryRun = false;
};

nlohmann::json toJson(const v1::AdoptReply& r) {
  nlohmann::json j = {{"name", r.name()},
                      {"ip", r.ip()},
                      {"root_pid", r.root_pid()},
                      {"pids", std::vector<int>(r.pids().begin(), r.pids().end())},
                      {"devices", std::vector<std::string>(r.devices().begin(), r.devices().end())},
                      {"refusals", std::vector<std::string>(r.refusals().begin(), r.refusals().end())}};
  return j;
}

int adopt(const Globals& g, Connector& conn, const AdoptOptions& o) {
  const std::string what = "adopt";
  v1::AdoptRequest rq;
  rq.set_pid(o.pid);
  rq.set_group(o.group);
  rq.set_name(o.name);
  rq.set_dry_run(o.dryRun);
  for (const auto& b : o.binds) rq.add_binds(b);
  for (const auto& p : o.publish) rq.add_publish(p);
  auto t = conn.onThisMachine(g.node);
  if (!t.ok()) return fail(what, t.status());
  // The dump and the restore of a large group take their time.
  Result<v1::AdoptReply> r = okStatus();
  {
    StepProgressLine line(::isatty(2) && !g.quiet && !g.json);
    auto ev = callStep(*t, &v1::Agent::Stub::Adopt, rq, 900, [&](const v1::Progress& p) { line(p); });
    if (!ev.ok()) return fail(what, ev.status());
    if (!ev->has_adopted()) return fail(what, internalError("the agent answered adopt with another reply"));
    r = ev->adopted();
  }
  const bool refused = r->refusals_size() > 0;
  const bool committed = r->has_report() && r->report().result() == v1::RESULT_COMMITTED;
  if (g.json) {
    nlohmann::json j = toJson(*r);
    if (r->has_report()) j["report"] = reportJson(r->report());
    printJson(j);
  } else {
    for (const auto& why : r->refusals()) std::fprintf(stderr, "lxmig: adopt refused: %s\n", why.c_str());
    if (!refused && o.dryRun) {
      std::printf("would adopt %d processes (root pid %d) into `%s`%s\n", r->pids_size(), r->root_pid(),
                  r->name().c_str(), r->devices_size() ? " with its devices" : "");
    } else if (!refused && r->has_report()) {
      if (!g.quiet || !committed) printReport(r->report(), false);
      if (committed && !g.quiet) {
        std::string pids;
        for (int p : r->pids()) pids += (pids.empty() ? "" : " ") + std::to_string(p);
        std::printf("%s running on %s at %s: %d processes, pids inside %s\n", r->name().c_str(),
                    r->report().source().c_str(), r->ip().c_str(), r->pids_size(), pids.c_str());
      }
    }
  }
  if (refused) return 1;
  if (!o.dryRun && !committed) {
    return failWith(what, r->report().error() + "; the processes run on the host as before");
  }
  return 0;
}

}  // namespace

Verb addAdopt(CLI::App& app) {
  auto* cmd = app.add_subcommand("adopt", "continue a group of host processes inside a new container of this node");
  withExamples(cmd, {"lxmig groups --all                       # find the group and its action",
                     "lxmig adopt --pid 4242 --publish 80 --dry-run",
                     "lxmig adopt --group g1092.2f5e1 --name nginx --publish 80 --bind /srv/www"});
  auto o = std::make_shared<AdoptOptions>();
  auto* pid = cmd->add_option("--pid", o->pid, "the IPC group holding this process (lxmig groups --pid)")
                  ->check(CLI::Range(1, 4194303));
  auto* group = cmd->add_option("--group", o->group, "the IPC group of this id (lxmig groups --all)");
  pid->excludes(group);
  cmd->add_option("--name", o->name, "the new container's name (default adopted-<root pid>)");
  cmd->add_option("--bind", o->binds, "DIR: a host directory the processes use, seen at the same path (writable)")
      ->allow_extra_args(false);
  cmd->add_option("-p,--publish", o->publish, "PORT[/tcp|udp] open to everyone (a firewall rule of the container)")
      ->allow_extra_args(false);
  cmd->add_flag("--dry-run", o->dryRun, "check and show what would be adopted, touch nothing");
  cmd->callback([pid, group] {
    if (pid->count() == 0 && group->count() == 0) throw CLI::RequiredError("--pid or --group");
  });
  return {cmd, [o](const Globals& g, Connector& conn) { return adopt(g, conn, *o); }};
}

}  // namespace lxmig::cli
