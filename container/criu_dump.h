// The CRIU command line of a container's checkpoint, built by the agent
// and run by lxmig-lxc without liblxc (LxcHost::dump).
//
// liblxc's checkpoint spent ~45 ms of the frozen window before CRIU ran:
// the helper's lxc_container_new, `criu --version` through the wrapper,
// and a round trip to the container's monitor per cgroup hierarchy. What it
// asked for is known to the agent, which wrote the container's config and
// chose its cgroup, so the agent hands CRIU the same options liblxc 5.0
// would (the images restore through liblxc as before):
//
//   dump --tcp-established --file-locks --link-remap --manage-cgroups=full
//        --ext-mount-map auto --enable-external-sharing
//        --enable-external-masters --enable-fs hugetlbfs --enable-fs tracefs
//        -D DIR -o DIR/dump.log
//        --cgroup-root CONTROLLERS:/PAYLOAD      (per hierarchy that holds
//                                                 init in PAYLOAD)
//        --ext-mount-map /PATH:PATH              (per bind mount entry)
//        -t INIT --skip-in-flight --freeze-cgroup FREEZER --force-irmap
//        --leave-running
//
// No console option: lxmig's containers have lxc.console.path = none.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::container {

struct CriuDumpPlan {
  std::string imagesDir;    // absolute
  pid_t init = 0;           // the container's init, as the host sees it
  std::string initCgroups;  // the text of /proc/INIT/cgroup
  std::string payload;      // the container's cgroup, "/PARENT/payload.NAME"
  bool unified = false;     // pure cgroup2 host (/sys/fs/cgroup/cgroup.controllers)
  std::string config;       // the container's LXC config, as lxmigd wrote it
};

// The arguments after `criu`, beginning with "dump". InvalidArgument when
// init is in none of the container's cgroups (a hierarchy that holds it
// elsewhere is left to CRIU's default, as liblxc did), the freezer
// hierarchy lacks it, or a mount entry of the config cannot be read.
Result<std::vector<std::string>> criuDumpArgs(const CriuDumpPlan& plan);

}  // namespace lxmig::container
