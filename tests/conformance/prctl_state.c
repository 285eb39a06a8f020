/* prctl state: the name, child subreaper, no_new_privs, dumpable 0 and the timer slack read back; a grandchild's
 * parent-death signal (PR_SET_PDEATHSIG) is kept: it fires when its parent is killed after the move, and the
 * orphan goes to this process (the subreaper). */
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "conf.h"

struct report {
  int sig, pdeath, ppid;
};

int main(void) {
  conf_init();
  CONF_CHECK(prctl(PR_SET_NAME, "conf-prctl") == 0 && prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 &&
                 prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_SET_DUMPABLE, 0) == 0 &&
                 prctl(PR_SET_TIMERSLACK, 123456) == 0,
             "prctl: %s", strerror(errno));
  int fds[2];
  CONF_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
  pid_t mid = fork();
  CONF_CHECK(mid >= 0, "fork: %s", strerror(errno));
  if (mid == 0) {
    if (fork() == 0) {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGUSR1);
      sigprocmask(SIG_BLOCK, &s, NULL);
      if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0) _exit(1);
      if (write(fds[1], "r", 1) != 1) _exit(1);
      /* EINTR after a stop (signal(7)): a checkpoint stops the task. */
      int sig;
      while ((sig = sigwaitinfo(&s, NULL)) < 0 && errno == EINTR) continue;
      struct report r = {sig, 0, 0};
      prctl(PR_GET_PDEATHSIG, &r.pdeath);
      r.ppid = getppid();
      _exit(write(fds[1], &r, sizeof r) == sizeof r ? 0 : 1);
    }
    for (;;) pause();
  }
  char c;
  CONF_CHECK(read(fds[0], &c, 1) == 1, "the grandchild did not start");
  conf_ready();
  conf_wait(NULL);
  char name[16] = {0};
  prctl(PR_GET_NAME, name);
  CONF_CHECK(strcmp(name, "conf-prctl") == 0, "name %s", name);
  int v = 0;
  CONF_CHECK(prctl(PR_GET_CHILD_SUBREAPER, &v) == 0 && v == 1, "child subreaper %d", v);
  CONF_CHECK((v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) == 1, "no_new_privs %d", v);
  CONF_CHECK((v = prctl(PR_GET_DUMPABLE)) == 0, "dumpable %d", v);
  CONF_CHECK((v = prctl(PR_GET_TIMERSLACK)) == 123456, "timer slack %d ns", v);
  kill(mid, SIGKILL);
  waitpid(mid, NULL, 0);
  struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
  struct report r = {0, 0, 0};
  CONF_CHECK(poll(&pfd, 1, 2000) == 1 && read(fds[0], &r, sizeof r) == sizeof r,
             "no parent-death signal when the grandchild's parent died");
  CONF_CHECK(r.sig == SIGUSR1 && r.pdeath == SIGUSR1, "parent-death signal %d (PR_GET_PDEATHSIG %d)", r.sig, r.pdeath);
  CONF_CHECK(r.ppid == getpid(), "the orphan went to pid %d, not to the subreaper %d", r.ppid, (int)getpid());
  conf_pass();
}
