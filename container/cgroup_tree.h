// cgroup2's controllers along a path: a cgroup has a controller only when
// its parent lists it in cgroup.subtree_control. Private to container/.
#pragma once

#include <string>

#include "lxmig/base/status.h"

namespace lxmig::container {

// Makes `root`/`rel` (a relative path of one or more names) and turns
// `controller` on in the cgroup.subtree_control of `root` and of every
// directory down to `root`/`rel` that does not list it yet, so that a
// cgroup made inside `root`/`rel` has it. liblxc does the same for the
// container parent when it starts a container; a node whose first container
// arrives by migration makes its held memory cgroup before that.
Status enableControllerDown(const std::string& root, const std::string& rel, const std::string& controller);

}  // namespace lxmig::container
