// Device passthrough: what a container needs, what a node offers, and
// whether a node can take a container (PREPARE).
//
// A requirement is a device node (type and major:minor) at a path inside
// the container, with where it was seen: the container's configuration
// (`lxmig run --device`, device cgroup allow rules, bind mounts of device
// nodes) and reality (device nodes its processes hold open or have mapped).
// A node offers the devices listed in its configuration (`devices = "..."`,
// each PATH or CLASS=PATH), or, when that is unset, every device node under
// /dev. Devices every container has (null, zero, full, random, urandom,
// tty, ptmx, pts) are never requirements.
//
//   auto need = devices::requirements(spec, configText, pids);
//   auto fit = devices::place(need, sourceOffer, targetOffer);
//   if (!fit.missing.empty()) ... one line per missing device
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::container::devices {

struct Device {
  char type = 'c';  // 'c' or 'b'
  uint32_t major = 0, minor = 0;
  std::string path;               // on the node (offer) or in the container (requirement)
  std::string hostPath;           // requirement: the node's device node it comes from
  std::string cls;                // operator-defined class ("gpu"), offers only
  std::vector<std::string> seen;  // requirement: "configured: --device", "open by pid 4 'sshfs' (fd 5)"

  std::string id() const;  // "c 10:200"
};

// type/major/minor of a device node; InvalidArgument when path is not one.
Result<Device> statDevice(const std::string& path);
bool standardDevice(const Device& d);

// The node's offer: "PATH" or "CLASS=PATH" entries separated by spaces or
// commas; empty = every non-standard device node under /dev.
Result<std::vector<Device>> parseOffer(const std::string& spec);

// --device HOST[:CONTAINER] (the node must offer HOST).
struct DeviceBind {
  std::string hostPath, containerPath;
};
Result<DeviceBind> parseDeviceFlag(const std::string& flag);

// What a container needs: from its device binds, its LXC config text
// (lxc.cgroup[2].devices.allow lines, lxc.mount.entry of /dev nodes) and
// its processes (host pids): /proc/PID/fd and /proc/PID/map_files.
std::vector<Device> requirements(const std::vector<DeviceBind>& binds, const std::string& lxcConfig,
                                 const std::vector<pid_t>& pids);

// Whether `offer` satisfies `need`: each requirement is met by the same
// device (type and major:minor), or by a device of the same class as the
// one the source offered it under (a mapping, which must keep the type).
struct Placement {
  std::vector<std::string> missing;             // one line each: "lacks c 10:200 /dev/net/tun needed ..."
  std::map<std::string, std::string> hostPath;  // container path -> the target's device node
  std::map<std::string, Device> target;         // container path -> the target's device
};
Placement place(const std::vector<Device>& need, const std::vector<Device>& sourceOffer,
                const std::vector<Device>& offer, const std::string& node, const std::string& container);

v1::Device toProto(const Device& d);
Device fromProto(const v1::Device& p);

}  // namespace lxmig::container::devices
