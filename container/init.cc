// lxmig-init: pid 1 of a container whose processes arrive after it starts
// (lxmig adopt, lxmig merge). It reaps whatever is reparented to it and
// exits, stopping the container, once the processes it received are gone:
// before any arrives it waits (no child yet: polled every 100 ms), after
// the first one it exits when it has no child left.
//
// Copied into the container's writable area (/.lxmig-init) by the agent, so
// it travels with the container and needs nothing of the host but the C
// library under /usr. Written against the C library only: no exceptions,
// no iostreams, a few KiB.
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main() {
  // pid 1 gets no signal it has no handler for; stray SIGPIPE and SIGHUP
  // are ignored outright.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  bool received = false;
  for (;;) {
    // Children only: other processes of the namespace (CRIU restoring the
    // tree) are not ours, and leaving while they work would kill them all.
    siginfo_t info = {};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | __WALL) != 0) {
      if (errno == EINTR) continue;
      if (errno != ECHILD) return 1;
      if (received) return 0;
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, nullptr);
      continue;
    }
    received = true;
    if (info.si_pid != 0) continue;  // reaped one; look again
    // Children, none ended: block until one does.
    int status = 0;
    if (waitpid(-1, &status, __WALL) < 0 && errno != EINTR && errno != ECHILD) return 1;
  }
}
