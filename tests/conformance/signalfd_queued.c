/* A signalfd for SIGUSR1 and SIGRTMIN with signals pending: SIGUSR1 (sent
 * twice, queued once) and five SIGRTMIN sent with sigqueue values; after the
 * move all are read, with their values and senders, in order. */
#include <sys/signalfd.h>

#include "conf.h"

#define NRT 5

int main(void) {
  conf_init();
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGRTMIN);
  CONF_CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0, "sigprocmask: %s", strerror(errno));
  int sf = signalfd(-1, &s, SFD_NONBLOCK);
  CONF_CHECK(sf >= 0, "signalfd: %s", strerror(errno));
  const pid_t me = getpid();
  CONF_CHECK(sigqueue(me, SIGUSR1, (union sigval){.sival_int = 7}) == 0, "sigqueue: %s", strerror(errno));
  CONF_CHECK(sigqueue(me, SIGUSR1, (union sigval){.sival_int = 8}) == 0, "sigqueue: %s", strerror(errno));
  for (int i = 0; i < NRT; ++i)
    CONF_CHECK(sigqueue(me, SIGRTMIN, (union sigval){.sival_int = 100 + i}) == 0, "sigqueue: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct signalfd_siginfo si;
  sigset_t pend;
  CONF_CHECK(sigpending(&pend) == 0 && sigismember(&pend, SIGUSR1) && sigismember(&pend, SIGRTMIN),
             "signals no longer pending (SIGUSR1 %d, SIGRTMIN %d)", sigismember(&pend, SIGUSR1),
             sigismember(&pend, SIGRTMIN));
  ssize_t n = read(sf, &si, sizeof si);
  CONF_CHECK(n == (ssize_t)sizeof si && si.ssi_signo == SIGUSR1, "first read: %zd bytes, signal %d (want SIGUSR1)", n,
             n > 0 ? (int)si.ssi_signo : 0);
  CONF_CHECK(si.ssi_code == SI_QUEUE && si.ssi_int == 7 && si.ssi_pid == (unsigned)me,
             "SIGUSR1: code %d, value %d, pid %u", si.ssi_code, si.ssi_int, si.ssi_pid);
  for (int i = 0; i < NRT; ++i) {
    n = read(sf, &si, sizeof si);
    CONF_CHECK(n == (ssize_t)sizeof si, "SIGRTMIN %d of %d: %s", i + 1, NRT, n < 0 ? strerror(errno) : "short read");
    CONF_CHECK(si.ssi_signo == (unsigned)SIGRTMIN && si.ssi_code == SI_QUEUE, "SIGRTMIN %d: signal %u, code %d", i + 1,
               si.ssi_signo, si.ssi_code);
    CONF_CHECK(si.ssi_int == 100 + i, "SIGRTMIN %d: value %d, want %d (order or value lost)", i + 1, si.ssi_int,
               100 + i);
    CONF_CHECK(si.ssi_pid == (unsigned)me && si.ssi_uid == getuid(), "SIGRTMIN %d: sender pid %u uid %u", i + 1,
               si.ssi_pid, si.ssi_uid);
  }
  CONF_CHECK(read(sf, &si, sizeof si) < 0 && errno == EAGAIN, "more signals than queued (signal %u, value %d)",
             si.ssi_signo, si.ssi_int);
  CONF_CHECK(sigqueue(me, SIGRTMIN, (union sigval){.sival_int = 200}) == 0, "sigqueue: %s", strerror(errno));
  CONF_CHECK(read(sf, &si, sizeof si) == (ssize_t)sizeof si && si.ssi_int == 200, "a signal sent after the move lost");
  conf_pass();
}
