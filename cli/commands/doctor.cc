// `lxmig doctor`: this node's prerequisites, checked right here without an
// agent, or another node's (--node), checked by its agent.
#include <cstdio>

#include "commands/command.h"
#include "lxmig/node/doctor.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

int doctor(const Globals& g, Connector& conn) {
  v1::DoctorReply rep;
  if (g.node.empty()) {
    rep = node::runDoctor(localHostName());
  } else {
    v1::DoctorRequest rq;
    rq.set_node(g.node);
    auto r = call(conn, g.node, &v1::Agent::Stub::Doctor, rq, 120);
    if (!r.ok()) return fail("doctor", r.status());
    rep = std::move(*r);
  }
  bool ok = true;
  nlohmann::json j = {{"node", rep.node()}, {"checks", nlohmann::json::array()}};
  for (const auto& c : rep.checks()) {
    if (!c.ok() && c.required()) ok = false;
    j["checks"].push_back(
        {{"name", c.name()}, {"ok", c.ok()}, {"required", c.required()}, {"detail", c.detail()}, {"hint", c.hint()}});
    if (!g.json) {
      std::printf("%-20s %-5s %s\n", c.name().c_str(), c.ok() ? "ok" : (c.required() ? "FAIL" : "warn"),
                  c.detail().c_str());
      if (!c.ok()) std::printf("%-20s       fix: %s\n", "", c.hint().c_str());
    }
  }
  j["ok"] = ok;
  if (g.json) printJson(j, 2);
  return ok ? 0 : 1;
}

}  // namespace

Verb addDoctor(CLI::App& app) {
  return {withExamples(app.add_subcommand("doctor", "check this node's prerequisites (or --node X's)"),
                       {"lxmig doctor", "lxmig --json --node n2 doctor"}),
          doctor};
}

}  // namespace lxmig::cli
