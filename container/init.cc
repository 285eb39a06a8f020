// lxmig-init: pid 1 of a container whose processes arrive after it starts
// (lxmig adopt, lxmig merge). It reaps whatever is reparented to it and
// exits, stopping the container, once the processes it received are gone:
// before any arrives it waits (no child yet: polled every 100 ms), after
// the first one it exits when it has no child left.
//
// SIGUSR1 makes it join the IPC namespace of its first child: CRIU restores
// a tree that maps System V shared memory in an IPC namespace of its own,
// and the container's init must share it (a container whose processes are
// in two IPC namespaces cannot be dumped again). The agent sends it once,
// after such a restore, and waits until the two namespaces are one.
//
// Copied into the container's writable area (/.lxmig-init) by the agent, so
// it travels with the container and needs nothing of the host but the C
// library under /usr. Written against the C library only: no exceptions,
// no iostreams, a few KiB.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace {

volatile sig_atomic_t g_joinIpc = 0;

void onUsr1(int) { g_joinIpc = 1; }

// setns into the IPC namespace of the first child listed by /proc (the
// container's own, mounted by LXC).
void joinChildIpc() {
  char buf[64] = {};
  int fd = open("/proc/1/task/1/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  long child = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) child = child * 10 + (buf[i] - '0');
  if (child <= 1) return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/ns/ipc", child);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return;
  (void)setns(ns, CLONE_NEWIPC);
  close(ns);
}

}  // namespace

int main() {
  // pid 1 gets no signal it has no handler for; stray SIGPIPE and SIGHUP
  // are ignored outright.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  struct sigaction sa = {};
  sa.sa_handler = onUsr1;  // no SA_RESTART: the wait below returns EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  bool received = false;
  for (;;) {
    if (g_joinIpc) {
      g_joinIpc = 0;
      joinChildIpc();
    }
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
