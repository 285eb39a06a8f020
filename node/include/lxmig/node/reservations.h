// Which containers of this node are busy, and why: a name is busy while it
// is created, removed, migrated or settled, and other operations on it are
// refused with FailedPrecondition ("container `web` is busy: migrating to
// n2"). A reservation is an object: the name is free again when it goes.
//
//   LXMIG_ASSIGN_OR_RETURN(node::Reservation r, reservations.reserve("web", "being removed"));
//   ... // the name is released when r goes out of scope (or r.release())
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "lxmig/base/status.h"

namespace lxmig::node {

class Reservations;

// What holds a name, where other parts of the node act on it: a container
// migrating shows as MIGRATING; one CRIU restores here (an incoming
// migration, an adoption) is not asked of liblxc, whose monitor answers
// only once CRIU is done.
enum class ReservationKind { kOther, kMigratingOut, kMigratingIn, kAdopting };

// Whether a container's reservation says CRIU restores it here (an incoming
// migration, Target::prepare; an adoption): until it is done, its liblxc
// monitor answers no command.
inline bool restoring(std::optional<ReservationKind> k) {
  return k == ReservationKind::kMigratingIn || k == ReservationKind::kAdopting;
}

// Holds one name busy until destroyed, moved from or released. Holding
// none (default-constructed, moved from) is fine.
class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& o) noexcept;
  Reservation& operator=(Reservation&& o) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { release(); }
  // Frees the name now. Idempotent.
  void release();
  bool held() const { return owner_ != nullptr; }
  const std::string& name() const { return name_; }

 private:
  friend class Reservations;
  Reservation(Reservations* owner, std::string name) : owner_(owner), name_(std::move(name)) {}
  Reservations* owner_ = nullptr;
  std::string name_;
};

// Thread-safe. Must outlive its reservations.
class Reservations {
 public:
  // FailedPrecondition naming what holds it when the name is busy.
  Result<Reservation> reserve(const std::string& name, const std::string& why,
                              ReservationKind kind = ReservationKind::kOther);
  // Why the name is busy; nullopt when it is free.
  std::optional<std::string> why(const std::string& name) const;
  // What holds the name; nullopt when it is free.
  std::optional<ReservationKind> kind(const std::string& name) const;

 private:
  friend class Reservation;
  void release(const std::string& name);
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, ReservationKind>> busy_;
};

}  // namespace lxmig::node
