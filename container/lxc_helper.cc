// lxmig-lxc dump|restore LXC_PATH NAME IMAGES_DIR: the liblxc half of a
// checkpoint or a restore, run by the agent as a process of its own.
//
//  - liblxc's restore forks the container's monitor from its caller and
//    keeps every inherited fd open in it; exec'd fresh, this process has
//    nothing of the agent's to leak.
//  - Each call gets the CRIU options of its own (LXMIG_CRIU_DUMP_OPTS and
//    LXMIG_CRIU_RESTORE_OPTS, read by the criu wrapper) in its own
//    environment, so dumps and restores of different containers run at
//    once, and none waits for a lock another holds.
//  - A dump reads the resource limits of processes of any uid, also where
//    root lacks CAP_SYS_RESOURCE: CRIU runs with the rlimits shim preloaded
//    (rlimits.h), set in this process's environment only.
// It links liblxc and little else, so it starts in a few milliseconds (both
// run in the frozen window).
//
// Exit codes: 0 done (a restored container is frozen, as dumped; a dumped
// one stays frozen), 1 liblxc's call failed (CRIU's logs say why), 2 usage,
// 3 no such container, 4 the rlimits shim is missing.
#include <lxc/lxccontainer.h>

#include <cstdio>
#include <cstring>

#include "rlimits.h"

int main(int argc, char** argv) {
  const bool dump = argc == 5 && std::strcmp(argv[1], "dump") == 0;
  const bool restore = argc == 5 && std::strcmp(argv[1], "restore") == 0;
  if (!dump && !restore) {
    std::fprintf(stderr, "usage: lxmig-lxc dump|restore LXC_PATH NAME IMAGES_DIR\n");
    return 2;
  }
  lxc_container* c = lxc_container_new(argv[3], argv[2]);
  if (!c || !c->is_defined(c)) {
    std::fprintf(stderr, "lxmig-lxc: container `%s` is not defined in %s\n", argv[3], argv[2]);
    if (c) lxc_container_put(c);
    return 3;
  }
  migrate_opts o{};
  o.directory = argv[4];
  int rc = 1;
  if (restore) {
    c->want_daemonize(c, true);
    c->want_close_all_fds(c, true);
    rc = c->migrate(c, MIGRATE_RESTORE, &o, sizeof o) == 0 ? 0 : 1;
  } else {
    o.stop = false;  // CRIU leaves the container as it found it: frozen
    if (auto shim = lxmig::container::preloadRlimitShim(); !shim.ok()) {
      std::fprintf(stderr, "lxmig-lxc: %s\n", shim.toString().c_str());
      rc = 4;
    } else {
      rc = c->migrate(c, MIGRATE_DUMP, &o, sizeof o) == 0 ? 0 : 1;
    }
  }
  lxc_container_put(c);
  return rc;
}
