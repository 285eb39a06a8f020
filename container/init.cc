// lxmig-init: pid 1 of every container lxmig starts.
//
//   /.lxmig-init                               processes arrive later (adopt)
//   /.lxmig-init --pid-base N -- CMD [ARG...]  lxmig run
//
// It reaps whatever is reparented to it and exits, stopping the container,
// once the processes it received are gone: before any arrives it waits (no
// child yet: polled every 100 ms), after the first one it exits when it has
// no child left. So the container lives while any of its processes does.
//
// With a command, it starts it as its child in a session of its own, with
// the pid N: the agent sets the namespace's last pid to N-1 from outside
// (/proc/sys is read-only in here) and this waits, at most 5 s, until it
// reads it. Each container's workload thus gets a pid range of its own, and
// the trees of several containers can be restored into one (lxmig merge).
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
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace {

volatile sig_atomic_t g_joinIpc = 0;
// LxcHost::kExecErrorPath: where a command that cannot be executed says why.
constexpr const char* kExecErrorFile = "/.lxmig-exec-error";

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

// The PID namespace's last allocated pid; -1 when unreadable.
long lastPid() {
  char buf[32] = {};
  int fd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? strtol(buf, nullptr, 10) : -1;
}

// Waits until the agent moved the last pid to base-1 (or 5 s passed), then
// forks the command into a session of its own. False: it could not start.
bool startCommand(long base, char** argv) {
  for (int i = 0; base > 1 && i < 2500 && lastPid() < base - 1; ++i) {
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  pid_t child = fork();
  if (child < 0) return false;
  if (child == 0) {
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    setsid();
    execvp(argv[0], argv);
    // Why, for the agent's `lxmig run` (LxcHost::execError): stderr goes
    // nowhere a user sees.
    const int err = errno;
    int fd = open(kExecErrorFile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      dprintf(fd, "Failed to exec \"%s\": %s", argv[0], strerror(err));
      close(fd);
    }
    _exit(127);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // liblxc starts the container from a thread of lxmigd, which blocks
  // SIGTERM and SIGINT for its signal thread: without this, the workload
  // would inherit that mask and never see a `kill -TERM`.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // pid 1 gets no signal it has no handler for; stray SIGPIPE and SIGHUP
  // are ignored outright.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  struct sigaction sa = {};
  sa.sa_handler = onUsr1;  // no SA_RESTART: the wait below returns EINTR
  sigaction(SIGUSR1, &sa, nullptr);
  bool received = false;
  if (argc >= 5 && strcmp(argv[1], "--pid-base") == 0 && strcmp(argv[3], "--") == 0) {
    if (!startCommand(strtol(argv[2], nullptr, 10), argv + 4)) return 127;
    received = true;
  } else if (argc != 1) {
    dprintf(2, "usage: lxmig-init [--pid-base N -- COMMAND [ARG...]]\n");
    return 2;
  }
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
