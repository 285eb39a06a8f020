/* The fd table itself: FD_CLOEXEC on some fds and not on others, O_NONBLOCK
 * on a pipe end, a socket with O_ASYNC, F_SETOWN and F_SETSIG, fds dup2()ed
 * to 1000/1001 and a gap left by close(). The same numbers, flags and files after. */
#include <linux/kcmp.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "conf.h"

#define MAXFD 1100

static int sameFile(int a, int b) { return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0; }

int main(void) {
  conf_init();
  int p[2], sp[2];
  CONF_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
  int gap = open("/tmp/conf-gap", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  CONF_CHECK(gap >= 0, "open: %s", strerror(errno));
  CONF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
  CONF_CHECK(close(gap) == 0, "close: %s", strerror(errno));
  CONF_CHECK(fcntl(p[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(p[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s",
             strerror(errno));
  CONF_CHECK(dup2(p[0], 1000) == 1000 && dup3(p[1], 1001, O_CLOEXEC) == 1001, "dup2: %s", strerror(errno));
  CONF_CHECK(fcntl(sp[0], F_SETOWN, getpid()) == 0 && fcntl(sp[0], F_SETSIG, SIGUSR1) == 0 &&
                 fcntl(sp[0], F_SETFL, O_ASYNC) == 0 && fcntl(sp[1], F_SETFD, FD_CLOEXEC) == 0,
             "fcntl socket: %s", strerror(errno));
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);
  static int before[MAXFD];
  for (int i = 0; i < MAXFD; ++i) before[i] = fcntl(i, F_GETFD);
  conf_ready();
  conf_wait(NULL);
  for (int i = 0; i < MAXFD; ++i) {
    const int now = fcntl(i, F_GETFD);
    CONF_CHECK(now >= 0 || before[i] < 0, "fd %d lost", i);
    CONF_CHECK(now < 0 || before[i] >= 0, "fd %d appeared (%s)", i, i == gap ? "the gap" : "not there before");
    CONF_CHECK(now == before[i], "fd %d: FD_CLOEXEC %s", i, now ? "set" : "cleared");
  }
  CONF_CHECK(before[p[0]] == FD_CLOEXEC && before[p[1]] == 0 && before[1000] == 0 && before[1001] == FD_CLOEXEC,
             "setup: FD_CLOEXEC not as meant");
  CONF_CHECK(sameFile(p[0], 1000) && sameFile(p[1], 1001), "fds 1000/1001 are no longer dups of the pipe's ends");
  CONF_CHECK(!sameFile(p[0], p[1]) && !sameFile(sp[0], sp[1]), "kcmp: distinct files merged");
  const int fl = fcntl(p[0], F_GETFL), wfl = fcntl(p[1], F_GETFL);
  CONF_CHECK((fl & O_NONBLOCK) && !(wfl & O_NONBLOCK), "O_NONBLOCK: read end %#o, write end %#o", fl, wfl);
  char c;
  CONF_CHECK(read(1000, &c, 1) == -1 && errno == EAGAIN, "empty non-blocking read end: %s", strerror(errno));
  CONF_CHECK(write(1001, "z", 1) == 1 && read(p[0], &c, 1) == 1 && c == 'z', "pipe through fd 1001/%d broken", p[0]);
  const int own = fcntl(sp[0], F_GETOWN), sig = fcntl(sp[0], F_GETSIG), sfl = fcntl(sp[0], F_GETFL);
  CONF_CHECK(own == getpid(), "F_GETOWN %d, not %d", own, (int)getpid());
  CONF_CHECK(sig == SIGUSR1, "F_GETSIG %d, not SIGUSR1", sig);
  CONF_CHECK(sfl & O_ASYNC, "socket lost O_ASYNC (flags %#o)", sfl);
  CONF_CHECK(write(sp[1], "s", 1) == 1, "write socket: %s", strerror(errno));
  siginfo_t si;
  struct timespec ts = {1, 0};
  CONF_CHECK(sigtimedwait(&usr1, &si, &ts) == SIGUSR1, "no SIGUSR1 for input on the O_ASYNC socket");
  CONF_CHECK(si.si_fd == sp[0] && si.si_code == POLL_IN, "SIGUSR1 for fd %d code %d, not fd %d POLL_IN", si.si_fd,
             si.si_code, sp[0]);
  conf_pass();
}
