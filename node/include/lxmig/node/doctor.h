// `lxmig doctor`: checks every prerequisite of a node and says how to fix
// what fails. Runs in the agent (for --node) and in the CLI (local node).
//
//   v1::DoctorReply r = runDoctor("n1");
//   for (auto& c : r.checks()) if (!c.ok()) puts(c.hint().c_str());
#pragma once

#include <string>

#include "lxmig/v1/agent.pb.h"

namespace lxmig::node {

v1::DoctorReply runDoctor(const std::string& nodeName);

// Puts the directory of lxmig's CRIU entry point (LXMIG_CRIU_DIR, default
// /opt/lxmig/bin) first in PATH: liblxc runs `criu` from PATH.
void preferLxmigCriu();

}  // namespace lxmig::node
