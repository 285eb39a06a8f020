// Private to net/: work inside another network namespace.
#pragma once

#include <functional>
#include <string>

#include "lxmig/base/status.h"

namespace lxmig::net::internal {

// Runs fn on a thread of its own inside the network namespace `netns` (a
// path such as /proc/PID/ns/net): setns acts per thread, and what the
// thread opens or forks lives there.
Status inNetns(const std::string& netns, const std::function<Status()>& fn);

}  // namespace lxmig::net::internal
