// How a migration records itself while it runs: each phase timed into the
// report and the audit at once, progress for the operator's terminal, and
// warnings that land in the log, the report and the audit alike.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/migration/progress.h"
#include "lxmig/store/audit_log.h"
#include "lxmig/v1/migration.pb.h"

namespace lxmig::migration {

// CRIU's logs of a failed migration outlive the images for the operator:
// copied from imagesDir to dest (<state>/logs/<id>).
void keepLogs(const std::string& imagesDir, const std::string& dest);
// A post-mortem switch in the agent's environment is on (`name`=1):
// LXMIG_KEEP_LOGS keeps the logs of every migration so, not only a failed
// one's (profiling; nothing removes them); LXMIG_KEEP_FAILED_IMAGES keeps
// a failed incoming restore's image set with its logs.
bool switchedOn(const char* name);

// The rows of `mode` still "running" in the audit: at an agent's start,
// steps it stopped under (adopt, merge), for it to settle. An audit that
// cannot be read is logged, and gives none.
std::vector<store::MigrationRecord> interruptedRows(store::AuditLog& audit, v1::MigrationMode mode);
// The report that finishes such a row (its id, container, nodes and mode).
v1::MigrationReport reportOf(const store::MigrationRecord& row, v1::MigrationMode mode);

// The report and the audit of one migration. An audit write that fails is
// logged (the migration goes on: the report still says everything).
class Journal {
 public:
  Journal(store::AuditLog& audit, v1::MigrationReport& report) : audit_(audit), report_(report) {}
  store::AuditLog& audit() { return audit_; }
  v1::MigrationReport& report() { return report_; }
  // The migration's row, "running".
  void begin(const std::string& reason);
  void setMode(v1::MigrationMode mode, v1::Tracker tracker);
  void round(const v1::RoundReport& r);
  // A phase measured elsewhere (the target's steps), `ms` long from `at`.
  void addPhase(v1::Phase phase, int64_t at, int64_t ms, uint64_t bytes, const std::string& detail);
  void event(const std::string& level, const std::string& text);
  // Logged, in the report's warnings and in the audit's events.
  void warn(const std::string& text);
  void finish(v1::MigrationResult result, const Status& st, int64_t totalMs);

 private:
  void check(const Status& st);
  store::AuditLog& audit_;
  v1::MigrationReport& report_;
};

// Times one phase into the journal; a phase never ended is recorded as
// interrupted when the clock goes.
class PhaseClock {
 public:
  PhaseClock(Journal& journal, v1::Phase phase);
  ~PhaseClock();
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;
  // Idempotent: the first call counts.
  void end(const Status& st, uint64_t bytes = 0, const std::string& detail = "");
  int64_t startedNs() const { return start_; }

 private:
  Journal& journal_;
  v1::Phase phase_;
  int64_t startWall_, start_;
  int64_t auditId_ = 0;
  bool ended_ = false;
};

// Progress events for the operator: a phase with bytes done of a total, and
// pre-copy's rounds; byte counts are sent at most every 100 ms.
class Progressor {
 public:
  // `container`: named in each event (adopt, merge: the container dumped).
  Progressor(ProgressFn fn, std::string migrationId, std::string container = "");
  void phase(v1::Phase phase, uint64_t total);
  void add(uint64_t n);
  void round(int k, uint64_t dirtyBytes, int64_t predictedMs);

 private:
  void emit(bool force);
  ProgressFn fn_;
  std::string id_, container_;
  v1::Phase phase_ = v1::PHASE_START;
  uint64_t done_ = 0, total_ = 0;
  int64_t t0_, phaseStart_ = 0, last_ = 0;
  int round_ = 0;
  uint64_t dirty_ = 0;
  int64_t predicted_ = 0;
};

}  // namespace lxmig::migration
