/* pidfds: one of a live child, one of a child that had exited (a zombie) when it was opened. After the move both
 * name their pids (fdinfo); the zombie's is readable and waitid(P_PIDFD) gives its exit code; the live one is not
 * readable, pidfd_send_signal kills its child, then it is readable and waitid(P_PIDFD) gives the signal. */
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "conf.h"

/* The pid in /proc/self/fdinfo of pidfd `fd`. */
static int fdinfoPid(int fd) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  int f = open(path, O_RDONLY);
  ssize_t n = f >= 0 ? read(f, buf, sizeof buf - 1) : -1;
  if (f >= 0) close(f);
  buf[n > 0 ? n : 0] = 0;
  const char* p = strstr(buf, "\nPid:\t");
  return p ? atoi(p + 6) : -2;
}

static int readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

int main(void) {
  conf_init();
  const pid_t live = fork();
  if (live == 0)
    for (;;) pause();
  const pid_t dead = fork();
  if (dead == 0) _exit(23);
  CONF_CHECK(live > 0 && dead > 0, "fork: %s", strerror(errno));
  siginfo_t si;
  CONF_CHECK(waitid(P_PID, dead, &si, WEXITED | WNOWAIT) == 0, "waitid: %s", strerror(errno)); /* a zombie now */
  const int fl = (int)syscall(SYS_pidfd_open, live, 0), fd = (int)syscall(SYS_pidfd_open, dead, 0);
  CONF_CHECK(fl >= 0 && fd >= 0, "pidfd_open: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  int pid = fdinfoPid(fl);
  CONF_CHECK(pid == live, "the live child's pidfd names pid %d, not %d", pid, (int)live);
  CONF_CHECK((pid = fdinfoPid(fd)) == dead, "the zombie's pidfd names pid %d, not %d", pid, (int)dead);
  CONF_CHECK(readable(fd, 0), "the zombie's pidfd is not readable");
  memset(&si, 0, sizeof si);
  CONF_CHECK(waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG) == 0, "waitid(P_PIDFD) on the zombie: %s", strerror(errno));
  CONF_CHECK(si.si_pid == dead && si.si_code == CLD_EXITED && si.si_status == 23,
             "waitid(P_PIDFD) on the zombie: pid %d code %d status %d", (int)si.si_pid, si.si_code, si.si_status);
  CONF_CHECK(!readable(fl, 0), "the live child's pidfd is readable");
  CONF_CHECK(syscall(SYS_pidfd_send_signal, fl, SIGUSR1, NULL, 0) == 0, "pidfd_send_signal: %s", strerror(errno));
  CONF_CHECK(readable(fl, 2000), "the live child's pidfd is not readable after pidfd_send_signal");
  memset(&si, 0, sizeof si);
  CONF_CHECK(waitid(P_PIDFD, fl, &si, WEXITED | WNOHANG) == 0, "waitid(P_PIDFD): %s", strerror(errno));
  CONF_CHECK(si.si_pid == live && si.si_code == CLD_KILLED && si.si_status == SIGUSR1,
             "waitid(P_PIDFD): pid %d code %d status %d", (int)si.si_pid, si.si_code, si.si_status);
  conf_pass();
}
