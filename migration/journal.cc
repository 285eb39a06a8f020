#include "journal.h"

#include <cstdlib>

#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/migration/report.h"
#include "lxmig/proto/vocabulary.h"

namespace lxmig::migration {

v1::MigrationReport reportOf(const store::MigrationRecord& row, v1::MigrationMode mode) {
  v1::MigrationReport rep;
  rep.set_id(row.id);
  rep.set_container(row.container);
  rep.set_source(row.source);
  rep.set_target(row.target);
  rep.set_mode(mode);
  return rep;
}

std::vector<store::MigrationRecord> interruptedRows(store::AuditLog& audit, v1::MigrationMode mode) {
  store::MigrationFilter f;
  f.result = std::string(name(v1::RESULT_RUNNING));
  f.limit = 1000;
  auto rows = audit.listMigrations(f);
  if (!rows.ok()) {
    LXMIG_LOG(kWarn, "migration") << "settling interrupted " << name(mode) << " steps: " << rows.status().toString();
    return {};
  }
  std::vector<store::MigrationRecord> out;
  for (auto& m : *rows)
    if (m.mode == name(mode)) out.push_back(std::move(m));
  return out;
}

constexpr const char* kLog = "migration";

void keepLogs(const std::string& imagesDir, const std::string& dest) {
  for (const char* f : {"dump.log", "restore.log", "lxc.log", "lazy-pages.log"}) {
    auto text = readFile(imagesDir + "/" + f);
    if (!text.ok()) continue;
    if (makeDirs(dest, 0700).ok()) (void)writeFileAtomic(dest + "/" + f, *text, 0600);
  }
}

bool switchedOn(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "1";
}

void Journal::check(const Status& st) {
  if (!st.ok()) LXMIG_LOG(kWarn, kLog) << "audit of migration " << report_.id() << ": " << st.toString();
}

void Journal::begin(const std::string& reason) {
  store::MigrationRecord rec;
  rec.id = report_.id();
  rec.container = report_.container();
  rec.source = report_.source();
  rec.target = report_.target();
  rec.mode = std::string(name(report_.mode()));
  rec.startedMs = report_.started_ms();
  rec.result = std::string(name(v1::RESULT_RUNNING));
  rec.reason = reason;
  check(audit_.beginMigration(rec));
}

void Journal::setMode(v1::MigrationMode mode, v1::Tracker tracker) {
  report_.set_mode(mode);
  report_.set_tracker(tracker);
  check(audit_.setMode(report_.id(), std::string(name(mode)), std::string(name(tracker))));
}

void Journal::round(const v1::RoundReport& r) {
  check(audit_.addRound(report_.id(), toRecord(r)));
  *report_.add_rounds() = r;
}

void Journal::addPhase(v1::Phase phase, int64_t at, int64_t ms, uint64_t bytes, const std::string& detail) {
  auto* p = report_.add_phases();
  p->set_phase(phase);
  p->set_started_ms(at);
  p->set_duration_ms(ms);
  p->set_bytes(bytes);
  p->set_result(v1::PHASE_RESULT_OK);
  p->set_detail(detail);
  auto id = audit_.beginPhase(report_.id(), std::string(name(phase)), at);
  check(id.status());
  if (id.ok())
    check(audit_.endPhase(*id, at + ms, static_cast<int64_t>(bytes), std::string(name(p->result())), "", detail));
}

void Journal::event(const std::string& level, const std::string& text) {
  const log::Level l = level == "error" ? log::Level::kError : level == "warn" ? log::Level::kWarn : log::Level::kInfo;
  if (l >= log::level()) log::write(l, kLog, "migration " + report_.id() + ": " + text);
  check(audit_.addEvent(report_.id(), level, text));
}

void Journal::warn(const std::string& text) {
  report_.add_warnings(text);
  event("warn", text);
}

void Journal::finish(v1::MigrationResult result, const Status& st, int64_t totalMs) {
  report_.set_result(result);
  report_.set_error(st.ok() ? "" : st.message());
  report_.set_total_ms(totalMs);
  if (report_.downtime_ms() == 0 && result != v1::RESULT_COMMITTED) report_.set_downtime_ms(-1);
  check(audit_.finishMigration(report_.id(), std::string(name(result)), report_.error(), wallMs(),
                               static_cast<int64_t>(report_.bytes()), report_.downtime_ms(), report_.total_ms()));
  // One line per migration for the operator's log (lxmig logs, the journal).
  if (result == v1::RESULT_COMMITTED)
    LXMIG_LOG(kInfo, kLog) << "migration " << report_.id() << " of " << report_.container() << " to "
                           << report_.target() << ": committed, downtime " << report_.downtime_ms() << " ms, total "
                           << report_.total_ms() << " ms";
  else
    LXMIG_LOG(kWarn, kLog) << "migration " << report_.id() << " of " << report_.container() << " to "
                           << report_.target() << ": " << name(result) << (st.ok() ? "" : " (" + st.message() + ")");
}

PhaseClock::PhaseClock(Journal& journal, v1::Phase phase)
    : journal_(journal), phase_(phase), startWall_(wallMs()), start_(monotonicNs()) {
  auto id = journal_.audit().beginPhase(journal_.report().id(), std::string(name(phase_)), startWall_);
  if (id.ok()) auditId_ = *id;
  else LXMIG_LOG(kWarn, kLog) << "audit: " << id.status().toString();
}

PhaseClock::~PhaseClock() {
  if (!ended_) end(Status(Code::kAborted, "interrupted"));
}

void PhaseClock::end(const Status& st, uint64_t bytes, const std::string& detail) {
  if (ended_) return;
  ended_ = true;
  const int64_t ms = (monotonicNs() - start_) / 1000000;
  auto* p = journal_.report().add_phases();
  p->set_phase(phase_);
  p->set_started_ms(startWall_);
  p->set_duration_ms(ms);
  p->set_bytes(bytes);
  p->set_result(st.ok() ? v1::PHASE_RESULT_OK : v1::PHASE_RESULT_FAILED);
  p->set_error(st.ok() ? "" : st.message());
  p->set_detail(detail);
  if (!auditId_) return;
  Status w = journal_.audit().endPhase(auditId_, startWall_ + ms, static_cast<int64_t>(bytes),
                                       std::string(name(p->result())), p->error(), detail);
  if (!w.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << w.toString();
}

Progressor::Progressor(ProgressFn fn, std::string migrationId, std::string container)
    : fn_(std::move(fn)), id_(std::move(migrationId)), container_(std::move(container)), t0_(monotonicNs()) {}

void Progressor::phase(v1::Phase phase, uint64_t total) {
  phase_ = phase;
  done_ = 0;
  total_ = total;
  phaseStart_ = monotonicNs();
  emit(true);
}

void Progressor::add(uint64_t n) {
  done_ += n;
  emit(false);
}

void Progressor::round(int k, uint64_t dirtyBytes, int64_t predictedMs) {
  // From round 1 on, "total" is where this round's sending will end.
  if (k > 0) total_ = done_ + dirtyBytes;
  round_ = k;
  dirty_ = dirtyBytes;
  predicted_ = predictedMs;
  emit(true);
}

void Progressor::emit(bool force) {
  if (!fn_) return;
  const int64_t now = monotonicNs();
  if (!force && now - last_ < 100000000) return;
  last_ = now;
  v1::Progress p;
  p.set_migration_id(id_);
  p.set_container(container_);
  p.set_phase(phase_);
  p.set_bytes_done(done_);
  p.set_bytes_total(total_);
  const double secs = static_cast<double>(now - phaseStart_) / 1e9;
  p.set_rate_bps(secs > 0 ? static_cast<double>(done_) / secs : 0);
  p.set_elapsed_ms((now - t0_) / 1000000);
  if (phase_ == v1::PHASE_PRECOPY) {
    p.set_round(round_);
    p.set_dirty_bytes(dirty_);
    p.set_predicted_downtime_ms(predicted_);
  }
  fn_(p);
}

}  // namespace lxmig::migration
