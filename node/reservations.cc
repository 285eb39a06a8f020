#include "lxmig/node/reservations.h"

namespace lxmig::node {

Reservation::Reservation(Reservation&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), name_(std::move(o.name_)) {}

Reservation& Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::exchange(o.owner_, nullptr);
    name_ = std::move(o.name_);
  }
  return *this;
}

void Reservation::release() {
  if (auto* o = std::exchange(owner_, nullptr)) o->release(name_);
}

Result<Reservation> Reservations::reserve(const std::string& name, const std::string& why, ReservationKind kind) {
  std::lock_guard lk(mu_);
  auto [it, inserted] = busy_.emplace(name, std::make_pair(why, kind));
  if (!inserted) return failedPrecondition("container `" + name + "` is busy: " + it->second.first);
  return Reservation(this, name);
}

std::optional<std::string> Reservations::why(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = busy_.find(name);
  if (it == busy_.end()) return std::nullopt;
  return it->second.first;
}

std::optional<ReservationKind> Reservations::kind(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = busy_.find(name);
  if (it == busy_.end()) return std::nullopt;
  return it->second.second;
}

void Reservations::release(const std::string& name) {
  std::lock_guard lk(mu_);
  busy_.erase(name);
}

}  // namespace lxmig::node
