#include "lxmig/migration/settle.h"

#include "lxmig/base/log.h"

namespace lxmig::migration {
namespace {
constexpr const char* kLog = "settle";
}  // namespace

FrozenCopies::Verdict FrozenCopies::decide(const std::string& name, std::string& why, std::string& migrationId) {
  // The migration that froze it: the newest of this container, from here.
  auto last = audit_.listMigrations({.container = name, .result = "", .limit = 1});
  if (last.ok() && !last->empty() && (*last)[0].source == host_.nodeName()) {
    const auto& m = (*last)[0];
    migrationId = m.id;
    if (auto peer = peers_.connect(m.target); peer.ok()) {
      Status c = (*peer)->commit(m.id);
      if (c.ok()) {
        why = "migration " + m.id + " restored it on " + m.target + ", where it is committed";
        return Verdict::kGone;
      }
      if (c.code() == Code::kFailedPrecondition) {  // prepared there, not restored
        if (Status a = (*peer)->abort(m.id, "source " + host_.nodeName() + " resumes its frozen copy", 10); !a.ok()) {
          why = "aborting migration " + m.id + " on " + m.target + ": " + a.message();
          return Verdict::kWait;
        }
        why = "migration " + m.id + " had not restored it on " + m.target + " (aborted there)";
        return Verdict::kThaw;
      }
      if (c.code() != Code::kNotFound) {
        why = m.target + " cannot say what became of migration " + m.id + ": " + c.message();
        return Verdict::kWait;
      }
    }
  }
  bool running = false, migrating = false;
  std::string unreachable;
  for (const auto& p : peers_.names()) {
    auto cs = peers_.containers(p, 3);
    if (!cs.ok()) {
      unreachable += (unreachable.empty() ? "" : ", ") + p;
      continue;
    }
    for (const auto& c : *cs)
      if (c.name() == name) {
        running |= c.state() == "RUNNING";
        migrating |= c.state() == "MIGRATING";
      }
  }
  if (running) {
    why = "a peer runs it";
    return Verdict::kGone;
  }
  if (migrating || !unreachable.empty()) {
    why = migrating ? "a peer is still migrating it in" : "peer(s) " + unreachable + " unreachable";
    return Verdict::kWait;
  }
  why = "no peer has it";
  return Verdict::kThaw;
}

Status FrozenCopies::thawAnyway(const std::string& name, const std::string& id) {
  std::lock_guard lk(mu_);
  if (host_.state(name) != container::RunState::kFrozen)
    return failedPrecondition("`" + name + "` is not frozen on " + host_.nodeName());
  LXMIG_ASSIGN_OR_RETURN(auto spec, host_.spec(name));
  LXMIG_ASSIGN_OR_RETURN(auto busy, reservations_.reserve(name, "being thawed by the operator"));
  LXMIG_RETURN_IF_ERROR(host_.thaw(name));
  Status st = host_.reconnect(spec);
  waiting_.erase(name);
  LXMIG_LOG(kWarn, kLog) << name << " thawed by the operator (lxmig cancel --force " << id
                         << ") before its migration's target answered";
  (void)audit_.addEvent(id, "warn",
                        "frozen copy on " + host_.nodeName() +
                            " thawed by the operator (lxmig cancel --force) without the target's word");
  return st;
}

int FrozenCopies::settle() {
  std::lock_guard lk(mu_);
  int left = 0;
  for (const auto& name : host_.containers()) {
    if (host_.state(name) != container::RunState::kFrozen) continue;
    auto spec = host_.spec(name);
    if (!spec.ok()) continue;
    // A migration running now owns its freeze.
    auto busy = reservations_.reserve(name, "settling an interrupted migration");
    if (!busy.ok()) continue;
    std::string why, id;
    const Verdict verdict = decide(name, why, id);
    if (verdict != Verdict::kWait && !id.empty()) {
      Status a = audit_.addEvent(
          id, "warn",
          "frozen copy on " + host_.nodeName() + ": " + why + (verdict == Verdict::kGone ? ", removed" : ", thawed"));
      if (!a.ok()) LXMIG_LOG(kWarn, kLog) << "audit: " << a.toString();
    }
    switch (verdict) {
      case Verdict::kGone:
        LXMIG_LOG(kWarn, kLog) << name << " is frozen here and " << why << ": removing the frozen copy";
        if (Status st = host_.destroy(name); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
        host_.forgetNet(*spec);
        waiting_.erase(name);
        break;
      case Verdict::kThaw:
        LXMIG_LOG(kWarn, kLog) << name << " was frozen by an interrupted migration and " << why << ": thawing it";
        if (Status st = host_.thaw(name); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
        if (Status st = host_.reconnect(*spec); !st.ok()) LXMIG_LOG(kWarn, kLog) << st.toString();
        waiting_.erase(name);
        break;
      case Verdict::kWait:
        if (waiting_[name] != why) LXMIG_LOG(kWarn, kLog) << name << " stays frozen for now: " << why;
        waiting_[name] = why;
        ++left;
        break;
    }
  }
  return left;
}

}  // namespace lxmig::migration
