// lxmig-restore LXC_PATH NAME IMAGES_DIR: the liblxc half of a restore, run
// by the agent as a process of its own. liblxc's restore forks the
// container's monitor from its caller and keeps every inherited fd open in
// it; exec'd fresh, this process has nothing of the agent's to leak. It
// links liblxc alone, so it starts in a few milliseconds (the restore is
// downtime). The CRIU options come in LXMIG_CRIU_RESTORE_OPTS (read by the
// criu wrapper).
//
// Exit codes: 0 restored (frozen as dumped), 1 liblxc's restore failed (its
// logs say why), 2 usage, 3 no such container.
#include <lxc/lxccontainer.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: lxmig-restore LXC_PATH NAME IMAGES_DIR\n");
    return 2;
  }
  lxc_container* c = lxc_container_new(argv[2], argv[1]);
  if (!c || !c->is_defined(c)) {
    std::fprintf(stderr, "lxmig-restore: container `%s` is not defined in %s\n", argv[2], argv[1]);
    if (c) lxc_container_put(c);
    return 3;
  }
  c->want_daemonize(c, true);
  c->want_close_all_fds(c, true);
  migrate_opts o{};
  o.directory = argv[3];
  const bool ok = c->migrate(c, MIGRATE_RESTORE, &o, sizeof o) == 0;
  lxc_container_put(c);
  return ok ? 0 : 1;
}
