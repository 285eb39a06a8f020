// lxmig: the operator's command line.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "groups.h"
#include "lxmig/grouping/scan_json.h"
#include "lxmig/node/doctor.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/proto/vocabulary.h"

using namespace lxmig;
using namespace lxmig::cli;
using nlohmann::json;

namespace {

struct Globals {
  std::string node;
  std::string socket = "/run/lxmig/agent.sock";
  std::string cluster;
  bool json = false;
  bool quiet = false;
};

int fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "lxmig: %s%s%s\n", what.c_str(), what.empty() ? "" : ": ", st.message().c_str());
  switch (st.code()) {
    case Code::kInvalidArgument: return 2;
    case Code::kUnimplemented: return 3;
    default: return 1;
  }
}

std::string defaultCluster() {
  if (const char* e = std::getenv("LXMIG_CLUSTER")) return e;
  std::string prefix = std::getenv("LXMIG_TESTBED_PREFIX") ? std::getenv("LXMIG_TESTBED_PREFIX") : "lxmig";
  std::string tb = "/run/" + prefix + "-testbed/cluster.toml";
  if (pathExists(tb)) return tb;
  return "/etc/lxmig/cluster.toml";
}

std::string exeDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string scriptsDir() {
  if (const char* e = std::getenv("LXMIG_SCRIPTS_DIR")) return e;
  if (pathExists(std::string(LXMIG_SOURCE_DIR) + "/scripts/testbed.sh")) return std::string(LXMIG_SOURCE_DIR) + "/scripts";
  return "/usr/local/share/lxmig/scripts";
}

std::string lxmigdPath() {
  if (const char* e = std::getenv("LXMIGD")) return e;
  std::string d = exeDir();
  for (const auto& c : {d + "/lxmigd", d + "/../agent/lxmigd"})
    if (pathExists(c)) return c;
  return "lxmigd";
}

std::string localHostName() {
  char host[256] = "local";
  ::gethostname(host, sizeof host);
  return host;
}

void deadline(grpc::ClientContext& ctx, int s) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(s));
}

std::string fmtMs(int64_t ms) { return ms < 0 ? "-" : std::to_string(ms) + " ms"; }

json reportJson(const v1::MigrationReport& r) {
  json j = {{"id", r.id()},          {"container", r.container()}, {"source", r.source()},
            {"target", r.target()},  {"mode", name(r.mode())},     {"result", name(r.result())},
            {"error", r.error()},    {"reason", r.reason()},       {"started_ms", r.started_ms()},
            {"downtime_ms", r.downtime_ms()}, {"total_ms", r.total_ms()}, {"bytes", r.bytes()}};
  j["tracker"] = name(r.tracker());
  j["phases"] = json::array();
  for (const auto& p : r.phases())
    j["phases"].push_back({{"name", name(p.phase())}, {"started_ms", p.started_ms()}, {"duration_ms", p.duration_ms()},
                           {"bytes", p.bytes()}, {"result", name(p.result())}, {"error", p.error()},
                           {"detail", p.detail()}});
  j["rounds"] = json::array();
  for (const auto& x : r.rounds())
    j["rounds"].push_back({{"round", x.round()}, {"started_ms", x.started_ms()}, {"duration_ms", x.duration_ms()},
                           {"scan_us", x.scan_us()}, {"processes", x.processes()}, {"dirty_pages", x.dirty_pages()},
                           {"pages_sent", x.pages_sent()}, {"bytes", x.bytes()},
                           {"dirty_rate_bps", x.dirty_rate_bps()}, {"send_rate_bps", x.send_rate_bps()},
                           {"predicted_downtime_ms", x.predicted_downtime_ms()}, {"stop", x.stop()}});
  j["warnings"] = r.warnings();
  j["events"] = r.events();
  return j;
}

void printReport(const v1::MigrationReport& r) {
  std::printf("migration %s: %s %s -> %s  %s\n", r.id().c_str(), r.container().c_str(), r.source().c_str(),
              r.target().c_str(), std::string(name(r.result())).c_str());
  if (!r.error().empty()) std::printf("  error: %s\n", r.error().c_str());
  std::string mode(name(r.mode()));
  if (r.tracker() != v1::TRACKER_NONE && r.tracker() != v1::TRACKER_AUTO) mode += " (" + std::string(name(r.tracker())) + ")";
  std::printf("  mode %s, downtime %s, total %s, %s transferred\n", mode.c_str(), fmtMs(r.downtime_ms()).c_str(),
              fmtMs(r.total_ms()).c_str(), humanBytes(r.bytes()).c_str());
  for (const auto& w : r.warnings()) std::printf("  warning: %s\n", w.c_str());
  if (r.rounds_size() > 0) {
    std::printf("  %-5s %9s %10s %10s %10s %12s %12s %10s  %s\n", "ROUND", "DURATION", "DIRTY", "SENT", "BYTES",
                "DIRTY RATE", "SEND RATE", "PREDICTED", "STOP");
    for (const auto& x : r.rounds())
      std::printf("  %-5d %9s %10s %10s %10s %10s/s %10s/s %10s  %s\n", x.round(), fmtMs(x.duration_ms()).c_str(),
                  humanBytes(x.dirty_pages() * 4096).c_str(), humanBytes(x.pages_sent() * 4096).c_str(),
                  humanBytes(x.bytes()).c_str(), humanBytes(static_cast<uint64_t>(x.dirty_rate_bps())).c_str(),
                  humanBytes(static_cast<uint64_t>(x.send_rate_bps())).c_str(),
                  x.round() == 0 ? "-" : fmtMs(x.predicted_downtime_ms()).c_str(), x.stop().c_str());
  }
  std::printf("  %-10s %10s %12s  %s\n", "PHASE", "DURATION", "BYTES", "RESULT");
  for (const auto& p : r.phases())
    std::printf("  %-10s %10s %12s  %s%s%s%s%s\n", std::string(name(p.phase())).c_str(), fmtMs(p.duration_ms()).c_str(),
                p.bytes() ? humanBytes(p.bytes()).c_str() : "-", std::string(name(p.result())).c_str(),
                p.error().empty() ? "" : ": ",
                p.error().c_str(), p.detail().empty() ? "" : "  ", p.detail().c_str());
  for (const auto& e : r.events()) std::printf("  event: %s\n", e.c_str());
}

grpc::ClientContext* g_migrateCtx = nullptr;
void onInterrupt(int) {
  if (g_migrateCtx) g_migrateCtx->TryCancel();
}

struct MigrateOptions {
  std::string mode, tracker, maxDowntime;
  int maxRounds = 0;
  bool noConntrack = false;
};

// "300ms", "0.5s", "2s" or plain milliseconds.
Result<int64_t> parseDurationMs(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? end : "";
  if (end == s.c_str() || v < 0) return invalidArgument("bad duration `" + s + "` (e.g. 300ms or 0.5s)");
  if (unit.empty() || unit == "ms") return static_cast<int64_t>(v);
  if (unit == "s") return static_cast<int64_t>(v * 1000);
  return invalidArgument("bad duration `" + s + "` (e.g. 300ms or 0.5s)");
}

// The final record of a migration whose stream the client cancelled: the
// source finishes the rollback (thaw, target abort) after the stream ends.
Result<v1::MigrationReport> awaitOutcome(Target& t, const std::string& node, const std::string& id) {
  const int64_t until = monotonicNs() + 120 * int64_t{1000000000};
  for (;;) {
    grpc::ClientContext ctx;
    deadline(ctx, 10);
    v1::GetMigrationRequest rq;
    rq.set_node(node);
    rq.set_id(id);
    v1::MigrationReport r;
    auto st = fromGrpc(t.stub->GetMigration(&ctx, rq, &r));
    if (!st.ok()) return st;
    if (r.result() != v1::RESULT_RUNNING) return r;
    if (monotonicNs() > until) return unavailable("still rolling back after 120 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int cmdMigrate(Globals& g, Connector& conn, const std::string& name, const std::string& to, const MigrateOptions& mo) {
  int64_t maxDowntimeMs = 0;
  if (!mo.maxDowntime.empty()) {
    auto d = parseDurationMs(mo.maxDowntime);
    if (!d.ok()) return fail("migrate " + name, d.status());
    if (*d == 0) return fail("migrate " + name, invalidArgument("--max-downtime must be above 0"));
    maxDowntimeMs = *d;
  }
  if (mo.maxRounds < 0) return fail("migrate " + name, invalidArgument("--max-rounds must be 1 or more"));
  std::string src = g.node;
  if (src.empty()) {
    auto loc = conn.locate(name);
    if (!loc.ok()) return fail("migrate " + name, loc.status());
    src = *loc;
  }
  auto t = conn.forNode(src);
  if (!t.ok()) return fail("migrate " + name, t.status());
  v1::MigrateRequest rq;
  rq.set_node(src);
  rq.set_container(name);
  rq.set_target(to);
  v1::MigrationMode mode = v1::MODE_AUTO;
  v1::Tracker tracker = v1::TRACKER_AUTO;
  if (!mo.mode.empty() && !parse(mo.mode, &mode))
    return fail("migrate " + name, invalidArgument("unknown --mode `" + mo.mode + "`"));
  if (!mo.tracker.empty() && !parse(mo.tracker, &tracker))
    return fail("migrate " + name, invalidArgument("unknown --tracker `" + mo.tracker + "`"));
  rq.set_mode(mode);
  rq.set_tracker(tracker);
  rq.set_max_downtime_ms(maxDowntimeMs);
  rq.set_max_rounds(mo.maxRounds);
  rq.set_no_conntrack(mo.noConntrack);
  rq.set_reason("operator");
  grpc::ClientContext ctx;
  g_migrateCtx = &ctx;
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  ::sigaction(SIGINT, &sa, nullptr);
  bool tty = ::isatty(2) && !g.quiet && !g.json;
  auto reader = t->stub->Migrate(&ctx, rq);
  v1::MigrateEvent ev;
  v1::MigrationReport report;
  bool haveReport = false;
  std::string migrationId;
  while (reader->Read(&ev)) {
    if (ev.has_progress() && !ev.progress().migration_id().empty()) migrationId = ev.progress().migration_id();
    if (ev.has_report()) {
      report = ev.report();
      haveReport = true;
    } else if (tty && ev.progress().phase() != v1::PHASE_START) {
      const auto& p = ev.progress();
      std::string line = "[" + std::string(lxmig::name(p.phase())) + "] ";
      if (p.phase() == v1::PHASE_PRECOPY) {
        if (p.round() == 0) line += "round 0 (all " + humanBytes(p.dirty_bytes()) + " present); ";
        else
          line += "round " + std::to_string(p.round()) + ", dirty " + humanBytes(p.dirty_bytes()) +
                  ", predicted downtime " + std::to_string(p.predicted_downtime_ms()) + " ms; ";
      }
      line += humanBytes(p.bytes_done());
      if (p.bytes_total()) line += " / " + humanBytes(p.bytes_total());
      if (p.rate_bps() > 0) {
        line += "  " + humanBytes(static_cast<uint64_t>(p.rate_bps())) + "/s";
        if (p.bytes_total() > p.bytes_done()) {
          char eta[32];
          std::snprintf(eta, sizeof eta, "  ETA %.1fs", static_cast<double>(p.bytes_total() - p.bytes_done()) / p.rate_bps());
          line += eta;
        }
      }
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    }
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  grpc::Status st = reader->Finish();
  g_migrateCtx = nullptr;
  if (!haveReport && st.error_code() == grpc::StatusCode::CANCELLED) {
    // Interrupted: the source rolls back on its own. Wait for its verdict
    // so the operator learns where the container runs, not just "maybe".
    if (migrationId.empty())
      return fail("migrate " + name, cancelled("interrupted before the source agent answered"));
    auto r = awaitOutcome(*t, src, migrationId);
    if (!r.ok())
      return fail("migrate " + name, cancelled("interrupted; the source agent rolls migration " + migrationId +
                                               " back (" + r.status().message() + "; see `lxmig audit show " +
                                               migrationId + "`)"));
    report = *r;
    haveReport = true;
  }
  if (!haveReport) return fail("migrate " + name, fromGrpc(st));
  if (g.json) std::cout << reportJson(report).dump(2) << "\n";
  else if (!g.quiet || report.result() != v1::RESULT_COMMITTED) printReport(report);
  if (report.result() != v1::RESULT_COMMITTED) {
    std::fprintf(stderr, "lxmig: migrate %s: %s: %s\n", name.c_str(), std::string(lxmig::name(report.result())).c_str(),
                 report.error().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log::setProgram("lxmig");
  node::preferLxmigCriu();
  CLI::App app{"lxmig: live migration of LXC containers between nodes"};
  app.require_subcommand(1);
  app.fallthrough(true);
  Globals g;
  app.add_option("--node", g.node, "node to act on (default: where the container runs / the local agent)");
  app.add_option("--socket", g.socket, "local agent socket")->envname("LXMIG_SOCKET");
  app.add_option("--cluster", g.cluster, "cluster inventory file");
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_flag("-q,--quiet", g.quiet, "no progress output");

  // doctor
  auto* doctor = app.add_subcommand("doctor", "check this node's prerequisites (or --node X's)");
  // testbed
  auto* tb = app.add_subcommand("testbed", "the embedded test bed: nodes in network namespaces on this machine");
  tb->require_subcommand(1);
  int tbNodes = 2;
  auto* tbUp = tb->add_subcommand("up", "bring the test bed up");
  tbUp->add_option("--nodes", tbNodes, "number of nodes")->check(CLI::Range(1, 9));
  auto* tbDown = tb->add_subcommand("down", "remove everything the test bed made");
  auto* tbStatus = tb->add_subcommand("status", "show the test bed");
  // containers
  auto* run = app.add_subcommand("run", "create and start an application container");
  std::string runName;
  std::vector<std::string> runCmd, runBinds, runEnv;
  run->add_option("--name", runName, "container name")->required();
  run->add_option("--bind", runBinds, "HOST[:CONTAINER][:rw] bind mount (read-only by default)")->allow_extra_args(false);
  run->add_option("-e,--env", runEnv, "NAME=value for the workload")->allow_extra_args(false);
  std::vector<std::string> runPublish;
  std::vector<std::string> runDevices;
  run->add_option("--device", runDevices, "/dev/X[:/dev/Y] device node of this node, bound into the container")
      ->allow_extra_args(false);
  run->add_option("-p,--publish", runPublish, "PORT[/tcp|udp] open to everyone (a firewall rule of the container)")
      ->allow_extra_args(false);
  run->add_option("command", runCmd, "command and arguments (after --)")->required();
  auto* ps = app.add_subcommand("ps", "list containers of all nodes");
  auto* rm = app.add_subcommand("rm", "stop and remove a container");
  std::string rmName;
  rm->add_option("name", rmName)->required();
  auto* exec = app.add_subcommand("exec", "run a command inside a container, wherever it lives");
  std::string execName;
  std::vector<std::string> execCmd;
  unsigned execTimeout = 60;
  exec->add_option("name", execName)->required();
  exec->add_option("--timeout", execTimeout, "seconds");
  exec->add_option("command", execCmd)->required();
  auto* migrate = app.add_subcommand("migrate", "live-migrate a container to another node");
  std::string migName, migTo;
  MigrateOptions migOpts;
  migrate->add_option("name", migName)->required();
  migrate->add_option("--to", migTo, "target node")->required();
  migrate->add_option("--mode", migOpts.mode, "pre-copy or stop-and-copy (default: pre-copy when a tracker works)")
      ->check(CLI::IsMember({"pre-copy", "stop-and-copy"}));
  migrate->add_option("--tracker", migOpts.tracker, "dirty tracker: auto, uffd-wp, soft-dirty, none (= stop-and-copy)")
      ->check(CLI::IsMember({"auto", "uffd-wp", "soft-dirty", "none"}));
  migrate->add_option("--max-downtime", migOpts.maxDowntime,
                      "pre-copy stops when the rest fits this (default " + std::to_string(kDefaultMaxDowntimeMs) + "ms)");
  migrate->add_option("--max-rounds", migOpts.maxRounds,
                      "pre-copy round limit (default " + std::to_string(kDefaultMaxRounds) + ")");
  migrate->add_flag("--no-conntrack", migOpts.noConntrack,
                    "leave the node's conntrack entries behind (diagnosis: established flows die behind a strict "
                    "firewall)");
  auto* fw = app.add_subcommand("fw", "a container's firewall rules (they move with it)");
  fw->require_subcommand(1);
  std::string fwName;
  std::vector<std::string> fwRule;
  uint64_t fwHandle = 0;
  auto* fwAdd = fw->add_subcommand("add", "add one rule in nft syntax for traffic to the container, e.g. "
                                          "`lxmig fw add web tcp dport 80 accept`");
  fwAdd->add_option("name", fwName)->required();
  fwAdd->add_option("rule", fwRule, "the rule (words are joined)")->required();
  auto* fwList = fw->add_subcommand("list", "list the container's rules with their handles");
  fwList->add_option("name", fwName)->required();
  auto* fwDel = fw->add_subcommand("del", "delete a rule by the handle `fw list` shows");
  fwDel->add_option("name", fwName)->required();
  fwDel->add_option("handle", fwHandle)->required();
  auto* audit = app.add_subcommand("audit", "migration history");
  audit->require_subcommand(1);
  auto* auditList = audit->add_subcommand("list", "recent migrations");
  std::string auditContainer;
  int auditLimit = 50;
  auditList->add_option("--container", auditContainer);
  auditList->add_option("--limit", auditLimit);
  auto* auditShow = audit->add_subcommand("show", "one migration with its phases");
  std::string auditId;
  auditShow->add_option("id", auditId)->required();
  auto* nodes = app.add_subcommand("nodes", "list the cluster's nodes");
  bool nodesDevices = false;
  nodes->add_flag("--devices", nodesDevices, "also the devices each node offers to containers");
  auto* devs = app.add_subcommand("devices", "the devices a container needs, and where each was seen");
  std::string devsName;
  devs->add_option("name", devsName)->required();
  auto* groups = app.add_subcommand("groups", "IPC groups: processes that must live and move together");
  bool groupsAll = false, groupsDot = false;
  int groupsPid = 0;
  std::string groupsContainer;
  auto* gAll = groups->add_flag("--all", groupsAll, "every group, also those only on the host");
  auto* gPid = groups->add_option("--pid", groupsPid, "the group holding this pid")->check(CLI::Range(1, 4194304));
  auto* gCont = groups->add_option("--container", groupsContainer, "the groups touching this container");
  gAll->excludes(gPid)->excludes(gCont);
  gPid->excludes(gCont);
  groups->add_flag("--dot", groupsDot, "Graphviz output (processes, labelled IPC edges, containers as clusters)");

  CLI11_PARSE(app, argc, argv);
  if (g.cluster.empty()) g.cluster = defaultCluster();
  Connector conn(g.socket, g.cluster);

  if (doctor->parsed()) {
    v1::DoctorReply rep;
    if (g.node.empty()) {
      rep = node::runDoctor(localHostName());
    } else {
      auto t = conn.forNode(g.node);
      if (!t.ok()) return fail("doctor", t.status());
      grpc::ClientContext ctx;
      deadline(ctx, 120);
      v1::DoctorRequest rq;
      rq.set_node(g.node);
      if (auto st = fromGrpc(t->stub->Doctor(&ctx, rq, &rep)); !st.ok()) return fail("doctor", st);
    }
    bool ok = true;
    json j = {{"node", rep.node()}, {"checks", json::array()}};
    for (const auto& c : rep.checks()) {
      if (!c.ok() && c.required()) ok = false;
      j["checks"].push_back({{"name", c.name()}, {"ok", c.ok()}, {"required", c.required()}, {"detail", c.detail()},
                             {"hint", c.hint()}});
      if (!g.json) {
        std::printf("%-20s %-5s %s\n", c.name().c_str(), c.ok() ? "ok" : (c.required() ? "FAIL" : "warn"),
                    c.detail().c_str());
        if (!c.ok()) std::printf("%-20s       fix: %s\n", "", c.hint().c_str());
      }
    }
    j["ok"] = ok;
    if (g.json) std::cout << j.dump(2) << "\n";
    return ok ? 0 : 1;
  }

  if (tb->parsed()) {
    std::string script = scriptsDir() + "/testbed.sh";
    std::vector<std::string> args = {"bash", script};
    if (tbUp->parsed()) {
      args.insert(args.end(), {"up", "--nodes", std::to_string(tbNodes), "--lxmigd", lxmigdPath()});
    } else if (tbDown->parsed()) {
      args.push_back("down");
    } else if (tbStatus->parsed()) {
      args.push_back("status");
      if (g.json) args.push_back("--json");
    }
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execvp("bash", cargs.data());
    return fail("testbed", Status::fromErrno("exec", script));
  }

  if (run->parsed()) {
    v1::RunContainerRequest rq;
    rq.set_node(g.node);
    rq.set_name(runName);
    for (const auto& c : runCmd) rq.add_command(c);
    for (const auto& p : runPublish) rq.add_publish(p);
    for (const auto& d : runDevices) rq.add_devices(d);
    for (const auto& e : runEnv) {
      if (e.find('=') == std::string::npos) return fail("run", invalidArgument("--env wants NAME=value, got `" + e + "`"));
      rq.add_env(e);
    }
    for (const auto& b : runBinds) {
      auto parts = split(b, ':', false);
      if (parts.empty() || parts.size() > 3 || parts[0].empty())
        return fail("run", invalidArgument("--bind wants HOST[:CONTAINER][:rw], got `" + b + "`"));
      auto* m = rq.add_binds();
      m->set_host_path(parts[0]);
      m->set_container_path(parts.size() >= 2 && !parts[1].empty() ? parts[1] : parts[0]);
      m->set_read_only(!(parts.size() == 3 && parts[2] == "rw"));
    }
    auto t = conn.forNode(g.node);
    if (!t.ok()) return fail("run " + runName, t.status());
    grpc::ClientContext ctx;
    deadline(ctx, 180);
    v1::ContainerInfo ci;
    if (auto st = fromGrpc(t->stub->RunContainer(&ctx, rq, &ci)); !st.ok()) return fail("run " + runName, st);
    if (g.json)
      std::cout << json({{"name", ci.name()}, {"node", ci.node()}, {"state", ci.state()}, {"ip", ci.ip()}}).dump() << "\n";
    else if (!g.quiet)
      std::printf("%s running on %s at %s\n", ci.name().c_str(), ci.node().c_str(), ci.ip().c_str());
    return 0;
  }

  if (ps->parsed() || nodes->parsed()) {
    auto t = conn.forNode(g.node);
    if (!t.ok()) return fail(ps->parsed() ? "ps" : "nodes", t.status());
    if (nodes->parsed()) {
      json arr = json::array();
      std::vector<std::string> names = conn.nodes();
      if (names.empty()) names.push_back("");
      if (!g.json) std::printf("%-10s %-22s %8s %10s %12s\n", "NODE", "ADDRESS", "LOAD1", "CONTAINERS", "MEM FREE");
      int rc = 0;
      for (const auto& n : names) {
        grpc::ClientContext ctx;
        deadline(ctx, 10);
        v1::GetNodeRequest rq;
        rq.set_node(n);
        v1::NodeInfo ni;
        auto st = fromGrpc(t->stub->GetNode(&ctx, rq, &ni));
        if (!st.ok()) {
          std::fprintf(stderr, "lxmig: nodes: %s: %s\n", n.c_str(), st.message().c_str());
          rc = 1;
          continue;
        }
        json nj = {{"name", ni.name()}, {"address", ni.address()}, {"load1", ni.load1()},
                   {"containers", ni.containers()}, {"mem_available_bytes", ni.mem_available_bytes()},
                   {"container_subnet", ni.container_subnet()}};
        if (nodesDevices) {
          nj["devices"] = json::array();
          for (const auto& d : ni.devices())
            nj["devices"].push_back({{"type", d.type()}, {"major", d.dev_major()}, {"minor", d.dev_minor()},
                                     {"path", d.path()}, {"class", d.cls()}});
        }
        arr.push_back(std::move(nj));
        if (!g.json) {
          std::printf("%-10s %-22s %8.2f %10u %12s\n", ni.name().c_str(), ni.address().c_str(), ni.load1(),
                      ni.containers(), humanBytes(ni.mem_available_bytes()).c_str());
          if (nodesDevices)
            for (const auto& d : ni.devices())
              std::printf("    %s %u:%u %s%s\n", d.type().c_str(), d.dev_major(), d.dev_minor(), d.path().c_str(),
                          d.cls().empty() ? "" : ("  class " + d.cls()).c_str());
        }
      }
      if (g.json) std::cout << json({{"nodes", arr}}).dump(2) << "\n";
      return rc;
    }
    grpc::ClientContext ctx;
    deadline(ctx, 20);
    v1::ListContainersRequest rq;
    rq.set_node(g.node);
    rq.set_all_nodes(g.node.empty());
    v1::ListContainersReply rp;
    if (auto st = fromGrpc(t->stub->ListContainers(&ctx, rq, &rp)); !st.ok()) return fail("ps", st);
    if (g.json) {
      json arr = json::array();
      for (const auto& c : rp.containers())
        arr.push_back({{"name", c.name()}, {"node", c.node()}, {"state", c.state()}, {"ip", c.ip()},
                       {"memory_bytes", c.memory_bytes()}, {"init_pid", c.init_pid()}, {"command", c.command()}});
      std::cout << json({{"containers", arr}, {"unreachable", rp.unreachable()}}).dump(2) << "\n";
    } else {
      std::printf("%-20s %-8s %-10s %-15s %10s\n", "NAME", "NODE", "STATE", "IP", "MEMORY");
      for (const auto& c : rp.containers())
        std::printf("%-20s %-8s %-10s %-15s %10s\n", c.name().c_str(), c.node().c_str(), c.state().c_str(),
                    c.ip().c_str(), humanBytes(c.memory_bytes()).c_str());
      for (const auto& u : rp.unreachable()) std::fprintf(stderr, "lxmig: ps: unreachable node %s\n", u.c_str());
    }
    return rp.unreachable().empty() ? 0 : 1;
  }

  if (rm->parsed() || exec->parsed()) {
    const std::string& name = rm->parsed() ? rmName : execName;
    const char* verb = rm->parsed() ? "rm" : "exec";
    std::string where = g.node;
    if (where.empty()) {
      auto loc = conn.locate(name);
      if (!loc.ok()) return fail(std::string(verb) + " " + name, loc.status());
      where = *loc;
    }
    auto t = conn.forNode(where);
    if (!t.ok()) return fail(std::string(verb) + " " + name, t.status());
    grpc::ClientContext ctx;
    if (rm->parsed()) {
      deadline(ctx, 60);
      v1::RemoveContainerRequest rq;
      rq.set_node(where);
      rq.set_name(name);
      v1::RemoveContainerReply rp;
      if (auto st = fromGrpc(t->stub->RemoveContainer(&ctx, rq, &rp)); !st.ok()) return fail("rm " + name, st);
      if (!g.quiet && !g.json) std::printf("%s removed from %s\n", name.c_str(), where.c_str());
      if (g.json) std::cout << json({{"name", name}, {"node", where}, {"removed", true}}).dump() << "\n";
      return 0;
    }
    deadline(ctx, static_cast<int>(execTimeout) + 15);
    v1::ExecRequest rq;
    rq.set_node(where);
    rq.set_name(name);
    rq.set_timeout_ms(execTimeout * 1000);
    for (const auto& c : execCmd) rq.add_command(c);
    v1::ExecReply rp;
    if (auto st = fromGrpc(t->stub->Exec(&ctx, rq, &rp)); !st.ok()) return fail("exec " + name, st);
    if (g.json) {
      std::cout << json({{"exit_code", rp.exit_code()}, {"stdout", rp.stdout_data()}, {"stderr", rp.stderr_data()}}).dump()
                << "\n";
    } else {
      std::fwrite(rp.stdout_data().data(), 1, rp.stdout_data().size(), stdout);
      std::fwrite(rp.stderr_data().data(), 1, rp.stderr_data().size(), stderr);
    }
    return rp.exit_code();
  }

  if (migrate->parsed()) return cmdMigrate(g, conn, migName, migTo, migOpts);

  if (devs->parsed()) {
    std::string where = g.node;
    if (where.empty()) {
      auto loc = conn.locate(devsName);
      if (!loc.ok()) return fail("devices " + devsName, loc.status());
      where = *loc;
    }
    auto t = conn.forNode(where);
    if (!t.ok()) return fail("devices " + devsName, t.status());
    v1::DevicesRequest rq;
    rq.set_node(where);
    rq.set_container(devsName);
    grpc::ClientContext ctx;
    deadline(ctx, 30);
    v1::DevicesReply rp;
    if (auto st = fromGrpc(t->stub->Devices(&ctx, rq, &rp)); !st.ok()) return fail("devices " + devsName, st);
    if (g.json) {
      json j = {{"container", devsName}, {"node", rp.node()}, {"devices", json::array()}};
      for (const auto& d : rp.needed())
        j["devices"].push_back({{"type", d.type()}, {"major", d.dev_major()}, {"minor", d.dev_minor()},
                                {"path", d.path()}, {"host_path", d.host_path()},
                                {"seen", std::vector<std::string>(d.seen().begin(), d.seen().end())}});
      std::cout << j.dump() << "\n";
      return 0;
    }
    if (rp.needed().empty()) std::printf("%s on %s needs no devices beyond the standard ones\n", devsName.c_str(),
                                         rp.node().c_str());
    else std::printf("%-12s %-20s %s\n", "DEVICE", "PATH", "SEEN");
    for (const auto& d : rp.needed()) {
      std::string seen;
      for (const auto& x : d.seen()) seen += (seen.empty() ? "" : "; ") + x;
      std::string id = d.type() + " " + std::to_string(d.dev_major()) + ":" + std::to_string(d.dev_minor());
      std::printf("%-12s %-20s %s\n", id.c_str(), d.path().empty() ? "-" : d.path().c_str(), seen.c_str());
    }
    return 0;
  }

  if (fw->parsed()) {
    std::string where = g.node;
    if (where.empty()) {
      auto loc = conn.locate(fwName);
      if (!loc.ok()) return fail("fw " + fwName, loc.status());
      where = *loc;
    }
    auto t = conn.forNode(where);
    if (!t.ok()) return fail("fw " + fwName, t.status());
    v1::FirewallRequest rq;
    rq.set_node(where);
    rq.set_container(fwName);
    std::string rule;
    for (const auto& w : fwRule) rule += (rule.empty() ? "" : " ") + w;
    rq.set_op(fwAdd->parsed() ? v1::FirewallRequest::ADD
                              : fwDel->parsed() ? v1::FirewallRequest::DELETE : v1::FirewallRequest::LIST);
    rq.set_rule(rule);
    rq.set_handle(fwHandle);
    grpc::ClientContext ctx;
    deadline(ctx, 30);
    v1::FirewallReply rp;
    if (auto st = fromGrpc(t->stub->Firewall(&ctx, rq, &rp)); !st.ok()) return fail("fw " + fwName, st);
    if (g.json) {
      json j = {{"container", fwName}, {"node", rp.node()}, {"rules", json::array()}};
      for (const auto& r : rp.rules()) j["rules"].push_back({{"handle", r.handle()}, {"rule", r.text()}});
      if (fwAdd->parsed()) j["added"] = {{"handle", rp.added().handle()}, {"rule", rp.added().text()}};
      std::cout << j.dump() << "\n";
    } else if (fwList->parsed()) {
      std::printf("%-8s %s\n", "HANDLE", ("RULES FOR TRAFFIC TO " + fwName + " ON " + rp.node()).c_str());
      for (const auto& r : rp.rules()) std::printf("%-8llu %s\n", static_cast<unsigned long long>(r.handle()), r.text().c_str());
    } else if (!g.quiet) {
      if (fwAdd->parsed())
        std::printf("%s on %s: rule %llu: %s\n", fwName.c_str(), rp.node().c_str(),
                    static_cast<unsigned long long>(rp.added().handle()), rp.added().text().c_str());
      else
        std::printf("%s on %s: rule %llu deleted\n", fwName.c_str(), rp.node().c_str(),
                    static_cast<unsigned long long>(fwHandle));
    }
    return 0;
  }

  if (groups->parsed()) {
    std::string text;
    if (g.node.empty()) {
      // Local analysis: no agent needed.
      grouping::Selection sel;
      sel.all = groupsAll;
      sel.pid = groupsPid;
      sel.container = groupsContainer;
      auto r = grouping::scanAndSelect(sel, localHostName());
      if (!r.ok()) return fail("groups", r.status());
      text = std::move(*r);
    } else {
      auto t = conn.forNode(g.node);
      if (!t.ok()) return fail("groups", t.status());
      grpc::ClientContext ctx;
      deadline(ctx, 60);
      v1::GroupsRequest rq;
      rq.set_node(g.node);
      rq.set_all(groupsAll);
      rq.set_pid(groupsPid);
      rq.set_container(groupsContainer);
      v1::GroupsReply rp;
      if (auto st = fromGrpc(t->stub->Groups(&ctx, rq, &rp)); !st.ok()) return fail("groups", st);
      text = std::move(*rp.mutable_scan_json());
    }
    if (g.json) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
    json scan = json::parse(text, nullptr, false);
    if (scan.is_discarded()) return fail("groups", internalError("malformed scan from the scanner or agent"));
    if (groupsDot) std::cout << renderGroupsDot(scan);
    else std::cout << renderGroupsTable(scan);
    return 0;
  }

  if (audit->parsed()) {
    std::vector<std::string> names = g.node.empty() ? conn.nodes() : std::vector<std::string>{g.node};
    if (names.empty()) names.push_back("");
    if (auditShow->parsed()) {
      for (const auto& n : names) {
        auto t = conn.forNode(n);
        if (!t.ok()) return fail("audit show", t.status());
        grpc::ClientContext ctx;
        deadline(ctx, 10);
        v1::GetMigrationRequest rq;
        rq.set_node(n);
        rq.set_id(auditId);
        v1::MigrationReport r;
        auto st = fromGrpc(t->stub->GetMigration(&ctx, rq, &r));
        if (st.code() == Code::kNotFound) continue;
        if (!st.ok()) return fail("audit show " + auditId, st);
        if (r.mode() == v1::MODE_INCOMING && names.size() > 1 && n != names.back()) {
          // Prefer the source's record, which has every phase.
          continue;
        }
        if (g.json) std::cout << reportJson(r).dump(2) << "\n";
        else printReport(r);
        return 0;
      }
      return fail("audit show", notFound("no migration `" + auditId + "` on any node"));
    }
    json arr = json::array();
    std::vector<v1::MigrationReport> all;
    for (const auto& n : names) {
      auto t = conn.forNode(n);
      if (!t.ok()) return fail("audit list", t.status());
      grpc::ClientContext ctx;
      deadline(ctx, 10);
      v1::ListMigrationsRequest rq;
      rq.set_node(n);
      rq.set_container(auditContainer);
      rq.set_limit(auditLimit);
      v1::ListMigrationsReply rp;
      if (auto st = fromGrpc(t->stub->ListMigrations(&ctx, rq, &rp)); !st.ok()) return fail("audit list", st);
      for (const auto& m : rp.migrations())
        if (m.mode() != v1::MODE_INCOMING) all.push_back(m);
    }
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.started_ms() > b.started_ms(); });
    if (g.json) {
      for (const auto& m : all) arr.push_back(reportJson(m));
      std::cout << json({{"migrations", arr}}).dump(2) << "\n";
      return 0;
    }
    std::printf("%-16s %-16s %-6s %-6s %-10s %10s %10s %10s\n", "ID", "CONTAINER", "FROM", "TO", "RESULT", "DOWNTIME",
                "TOTAL", "BYTES");
    for (const auto& m : all)
      std::printf("%-16s %-16s %-6s %-6s %-10s %10s %10s %10s\n", m.id().c_str(), m.container().c_str(),
                  m.source().c_str(), m.target().c_str(), std::string(name(m.result())).c_str(),
                  fmtMs(m.downtime_ms()).c_str(),
                  fmtMs(m.total_ms()).c_str(), humanBytes(m.bytes()).c_str());
    return 0;
  }
  return 0;
}
