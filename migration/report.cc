#include "lxmig/migration/report.h"

#include "lxmig/proto/vocabulary.h"

namespace lxmig::migration {

store::RoundRecord toRecord(const v1::RoundReport& r) {
  store::RoundRecord rr;
  rr.round = r.round();
  rr.startedMs = r.started_ms();
  rr.durationMs = r.duration_ms();
  rr.scanUs = r.scan_us();
  rr.processes = r.processes();
  rr.dirtyPages = static_cast<int64_t>(r.dirty_pages());
  rr.pagesSent = static_cast<int64_t>(r.pages_sent());
  rr.bytes = static_cast<int64_t>(r.bytes());
  rr.dirtyRateBps = r.dirty_rate_bps();
  rr.sendRateBps = r.send_rate_bps();
  rr.predictedDowntimeMs = r.predicted_downtime_ms();
  rr.stop = r.stop();
  return rr;
}

v1::RoundReport fromRecord(const store::RoundRecord& x) {
  v1::RoundReport r;
  r.set_round(x.round);
  r.set_started_ms(x.startedMs);
  r.set_duration_ms(x.durationMs);
  r.set_scan_us(x.scanUs);
  r.set_processes(static_cast<uint32_t>(x.processes));
  r.set_dirty_pages(static_cast<uint64_t>(x.dirtyPages));
  r.set_pages_sent(static_cast<uint64_t>(x.pagesSent));
  r.set_bytes(static_cast<uint64_t>(x.bytes));
  r.set_dirty_rate_bps(x.dirtyRateBps);
  r.set_send_rate_bps(x.sendRateBps);
  r.set_predicted_downtime_ms(x.predictedDowntimeMs);
  r.set_stop(x.stop);
  return r;
}

v1::MigrationReport fromRecord(const store::MigrationRecord& m) {
  v1::MigrationReport r;
  r.set_id(m.id);
  r.set_container(m.container);
  r.set_source(m.source);
  r.set_target(m.target);
  v1::MigrationMode mode = v1::MODE_AUTO;
  v1::MigrationResult result = v1::RESULT_UNSPECIFIED;
  v1::Tracker tracker = v1::TRACKER_NONE;
  (void)parse(m.mode, &mode);
  (void)parse(m.result, &result);
  (void)parse(m.tracker, &tracker);
  r.set_mode(mode);
  r.set_result(result);
  r.set_tracker(tracker);
  r.set_error(m.error);
  r.set_started_ms(m.startedMs);
  r.set_downtime_ms(m.downtimeMs);
  r.set_total_ms(m.totalMs);
  r.set_bytes(static_cast<uint64_t>(m.bytes));
  r.set_reason(m.reason);
  for (const auto& p : m.phases) {
    auto* ph = r.add_phases();
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
    v1::PhaseResult pr = v1::PHASE_RESULT_UNSPECIFIED;
    (void)parse(p.name, &phase);
    (void)parse(p.result, &pr);
    ph->set_phase(phase);
    ph->set_started_ms(p.startedMs);
    ph->set_duration_ms(p.endedMs ? p.endedMs - p.startedMs : -1);
    ph->set_bytes(static_cast<uint64_t>(p.bytes));
    ph->set_result(pr);
    ph->set_error(p.error);
    ph->set_detail(p.detail);
  }
  for (const auto& x : m.rounds) *r.add_rounds() = fromRecord(x);
  return r;
}

}  // namespace lxmig::migration
