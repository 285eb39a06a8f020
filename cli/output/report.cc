#include "output/report.h"

#include <iostream>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/vocabulary.h"
#include "output/json.h"
#include "output/table.h"

namespace lxmig::cli {
namespace {

// Rounds count pages; the agent's pages are the x86_64 base page.
constexpr uint64_t kPageBytes = 4096;

std::string str(std::string_view s) { return std::string(s); }

}  // namespace

nlohmann::json reportJson(const v1::MigrationReport& r) {
  using nlohmann::json;
  json j = {{"id", r.id()},
            {"container", r.container()},
            {"source", r.source()},
            {"target", r.target()},
            {"mode", name(r.mode())},
            {"result", name(r.result())},
            {"error", r.error()},
            {"reason", r.reason()},
            {"started_ms", r.started_ms()},
            {"downtime_ms", r.downtime_ms()},
            {"total_ms", r.total_ms()},
            {"bytes", r.bytes()}};
  j["tracker"] = name(r.tracker());
  j["phases"] = json::array();
  for (const auto& p : r.phases())
    j["phases"].push_back({{"name", name(p.phase())},
                           {"started_ms", p.started_ms()},
                           {"duration_ms", p.duration_ms()},
                           {"bytes", p.bytes()},
                           {"result", name(p.result())},
                           {"error", p.error()},
                           {"detail", p.detail()}});
  j["rounds"] = json::array();
  for (const auto& x : r.rounds())
    j["rounds"].push_back({{"round", x.round()},
                           {"started_ms", x.started_ms()},
                           {"duration_ms", x.duration_ms()},
                           {"scan_us", x.scan_us()},
                           {"processes", x.processes()},
                           {"dirty_pages", x.dirty_pages()},
                           {"pages_sent", x.pages_sent()},
                           {"bytes", x.bytes()},
                           {"dirty_rate_bps", x.dirty_rate_bps()},
                           {"send_rate_bps", x.send_rate_bps()},
                           {"predicted_downtime_ms", x.predicted_downtime_ms()},
                           {"stop", x.stop()}});
  j["warnings"] = r.warnings();
  j["events"] = r.events();
  return j;
}

std::string reportText(const v1::MigrationReport& r) {
  std::string out = "migration " + r.id() + ": " + r.container() + " " + r.source() + " -> " + r.target() + "  " +
                    str(name(r.result())) + "\n";
  if (!r.error().empty()) out += "  error: " + printable(r.error()) + "\n";
  std::string mode(name(r.mode()));
  if (r.tracker() != v1::TRACKER_NONE && r.tracker() != v1::TRACKER_AUTO) mode += " (" + str(name(r.tracker())) + ")";
  out += "  mode " + mode + ", downtime " + formatMs(r.downtime_ms()) + ", total " + formatMs(r.total_ms()) + ", " +
         humanBytes(r.bytes()) + " transferred\n";
  for (const auto& w : r.warnings()) out += "  warning: " + printable(w) + "\n";
  if (r.rounds_size() > 0) {
    Table rounds("  %-5s %9s %10s %10s %10s %12s %12s %10s  %s\n");
    out += rounds.row({"ROUND", "DURATION", "DIRTY", "SENT", "BYTES", "DIRTY RATE", "SEND RATE", "PREDICTED", "STOP"});
    for (const auto& x : r.rounds())
      out += rounds.row({std::to_string(x.round()), formatMs(x.duration_ms()), humanBytes(x.dirty_pages() * kPageBytes),
                         humanBytes(x.pages_sent() * kPageBytes), humanBytes(x.bytes()), formatRate(x.dirty_rate_bps()),
                         formatRate(x.send_rate_bps()), x.round() == 0 ? "-" : formatMs(x.predicted_downtime_ms()),
                         x.stop()});
  }
  Table phases("  %-10s %10s %12s  %s\n");
  out += phases.row({"PHASE", "DURATION", "BYTES", "RESULT"});
  for (const auto& p : r.phases()) {
    std::string result(name(p.result()));
    if (!p.error().empty()) result += ": " + p.error();
    if (!p.detail().empty()) result += "  " + p.detail();
    out +=
        phases.row({str(name(p.phase())), formatMs(p.duration_ms()), p.bytes() ? humanBytes(p.bytes()) : "-", result});
  }
  for (const auto& e : r.events()) out += "  event: " + printable(e) + "\n";
  return out;
}

void printReport(const v1::MigrationReport& r, bool json) {
  if (json) printJson(reportJson(r), 2);
  else std::cout << reportText(r);
}

}  // namespace lxmig::cli
