// Containers of this node left FROZEN by a migration that did not end here:
// the agent died in the frozen window, or the target did not confirm an
// abort. Each is settled with the migration's target when possible:
//   the target accepts COMMIT          -> its copy runs; the frozen one here goes
//   the target has not restored it    -> ABORT there, thaw here
//   the target has no trace of it     -> a peer that runs it owns it; otherwise thaw
//   a peer is unreachable, or still migrating it in -> it stays frozen for the next try
// At no point may two copies run.
//
//   FrozenCopies frozen(host, peers, audit, reservations);
//   int left = frozen.settle();   // at start, then again while left > 0
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "lxmig/migration/host.h"
#include "lxmig/migration/peers.h"
#include "lxmig/node/reservations.h"
#include "lxmig/store/audit_log.h"

namespace lxmig::migration {

class FrozenCopies {
 public:
  // All four outlive this object.
  FrozenCopies(ContainerHost& host, Peers& peers, store::AuditLog& audit, node::Reservations& reservations)
      : host_(host), peers_(peers), audit_(audit), reservations_(reservations) {}
  // Settles every frozen container whose name is not busy (a migration
  // running now owns its freeze). Returns how many are left frozen.
  // Thread-safe; one call at a time does the work.
  int settle();
  // The operator's way out (lxmig cancel --force) when the target stays
  // silent: thaws `name`, frozen here by migration `id`, without asking
  // anyone. Two copies run if the target had restored it.
  // FailedPrecondition when it is not frozen or a migration holds it.
  Status thawAnyway(const std::string& name, const std::string& id);

 private:
  enum class Verdict { kThaw, kGone, kWait };
  // Who runs `name`; `why` says how that was found, `migrationId` names the
  // migration that froze it, when known.
  Verdict decide(const std::string& name, std::string& why, std::string& migrationId);

  ContainerHost& host_;
  Peers& peers_;
  store::AuditLog& audit_;
  node::Reservations& reservations_;
  std::mutex mu_;
  std::map<std::string, std::string> waiting_;  // name -> why it waits, logged once
};

}  // namespace lxmig::migration
