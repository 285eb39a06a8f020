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

// The agent's own: where a migration's images go (the tmpfs, and the disk
// directory when the tmpfs is short: images_disk_dir) and how much each
// has free; a missing disk directory fails (the agent makes it at start).
void addImagesCheck(v1::DoctorReply& r, const std::string& tmpfs, const std::string& disk);

// Whether the host of this (virtual) machine takes back guest memory that
// stays free: a virtio balloon that offers free page reporting, read from
// the sysfs under `sys`. Memory one migration frees and the next one uses
// is then faulted in again from the host, which the next page stream pays
// (`lxmig doctor`: `host-memory`).
bool hostReclaimsFreeMemory(const std::string& sys = "/sys");

// Puts the directory of lxmig's CRIU entry point (LXMIG_CRIU_DIR, default
// /opt/lxmig/bin) first in PATH: liblxc runs `criu` from PATH.
void preferLxmigCriu();

}  // namespace lxmig::node
