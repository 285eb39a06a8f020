/* Signal state: SIGUSR2 ignored, SIGUSR1 and SIGRTMIN+2 caught (SA_SIGINFO|SA_RESTART|SA_ONSTACK, a handler
 * mask), SIGHUP with SA_RESETHAND, an alternate stack, a blocked mask with SIGUSR1 (raised) and two SIGRTMIN+2
 * (sigqueue values) pending: all kept, the pending ones delivered in order with their values once unblocked. */
#include "conf.h"

static char altstack[64 * 1024];
static volatile sig_atomic_t ngot, onAlt, hups;
static volatile int gotSig[8], gotVal[8];

static void onSig(int sig, siginfo_t* si, void* uc) {
  (void)uc;
  char here;
  if (&here >= altstack && &here < altstack + sizeof altstack) ++onAlt;
  if (ngot < 8) {
    gotSig[ngot] = sig;
    gotVal[ngot] = si->si_code == SI_QUEUE ? si->si_value.sival_int : -si->si_code;
    ++ngot;
  }
}
static void onHup(int sig) {
  (void)sig;
  ++hups;
}

int main(void) {
  conf_init();
  const int rt = SIGRTMIN + 2;
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
  CONF_CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack: %s", strerror(errno));
  struct sigaction sa = {.sa_sigaction = onSig, .sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK};
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGQUIT);
  sigaddset(&sa.sa_mask, rt); /* one handler at a time: delivered in dequeue order */
  CONF_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0 && sigaction(rt, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  struct sigaction hup = {.sa_handler = onHup, .sa_flags = SA_RESETHAND};
  sigemptyset(&hup.sa_mask);
  CONF_CHECK(sigaction(SIGHUP, &hup, NULL) == 0, "sigaction: %s", strerror(errno));
  CONF_CHECK(signal(SIGUSR2, SIG_IGN) != SIG_ERR, "signal: %s", strerror(errno));
  sigset_t blk;
  sigemptyset(&blk);
  sigaddset(&blk, SIGUSR1);
  sigaddset(&blk, rt);
  sigaddset(&blk, SIGWINCH);
  CONF_CHECK(sigprocmask(SIG_BLOCK, &blk, NULL) == 0, "sigprocmask: %s", strerror(errno));
  CONF_CHECK(raise(SIGUSR1) == 0, "raise: %s", strerror(errno));
  CONF_CHECK(sigqueue(getpid(), rt, (union sigval){.sival_int = 1234}) == 0 &&
                 sigqueue(getpid(), rt, (union sigval){.sival_int = 5678}) == 0,
             "sigqueue: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct sigaction o;
  sigaction(SIGUSR2, NULL, &o);
  CONF_CHECK(o.sa_handler == SIG_IGN, "SIGUSR2 is no longer ignored");
  const int caught[2] = {SIGUSR1, rt};
  for (int i = 0; i < 2; ++i) {
    const int s = caught[i];
    sigaction(s, NULL, &o);
    CONF_CHECK(o.sa_sigaction == onSig, "signal %d lost its handler", s);
    CONF_CHECK((o.sa_flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK)) == (SA_SIGINFO | SA_RESTART | SA_ONSTACK),
               "signal %d flags %#x", s, (unsigned)o.sa_flags);
    CONF_CHECK(sigismember(&o.sa_mask, SIGINT) && sigismember(&o.sa_mask, SIGQUIT) && sigismember(&o.sa_mask, rt) &&
                   !sigismember(&o.sa_mask, SIGHUP),
               "signal %d lost its handler mask", s);
  }
  sigaction(SIGHUP, NULL, &o);
  CONF_CHECK(o.sa_handler == onHup && (o.sa_flags & SA_RESETHAND), "SIGHUP handler/SA_RESETHAND lost");
  CONF_CHECK(sigaltstack(NULL, &ss) == 0 && ss.ss_sp == altstack && ss.ss_size == sizeof altstack && ss.ss_flags == 0,
             "alternate stack %p size %zu flags %d", ss.ss_sp, ss.ss_size, ss.ss_flags);
  sigset_t m, p;
  sigprocmask(SIG_BLOCK, NULL, &m);
  CONF_CHECK(sigismember(&m, SIGUSR1) && sigismember(&m, rt) && sigismember(&m, SIGWINCH) && !sigismember(&m, SIGHUP),
             "blocked mask changed");
  sigpending(&p);
  CONF_CHECK(sigismember(&p, SIGUSR1) && sigismember(&p, rt) && !sigismember(&p, SIGWINCH),
             "pending set: SIGUSR1 %d SIGRTMIN+2 %d SIGWINCH %d", sigismember(&p, SIGUSR1), sigismember(&p, rt),
             sigismember(&p, SIGWINCH));
  CONF_CHECK(ngot == 0, "%d blocked signals were delivered", (int)ngot);
  sigprocmask(SIG_UNBLOCK, &blk, NULL);
  CONF_CHECK(ngot == 3, "%d of the 3 pending signals delivered", (int)ngot);
  CONF_CHECK(gotSig[0] == SIGUSR1 && gotVal[0] == -SI_TKILL, "first delivery: signal %d code %d", gotSig[0],
             -gotVal[0]);
  CONF_CHECK(gotSig[1] == rt && gotVal[1] == 1234 && gotSig[2] == rt && gotVal[2] == 5678,
             "queued SIGRTMIN+2 values: %d %d (signals %d %d)", gotVal[1], gotVal[2], gotSig[1], gotSig[2]);
  CONF_CHECK(onAlt == 3, "%d of 3 handlers ran on the alternate stack", (int)onAlt);
  raise(SIGHUP);
  sigaction(SIGHUP, NULL, &o);
  CONF_CHECK(hups == 1 && o.sa_handler == SIG_DFL, "SIGHUP: %d calls, not reset to SIG_DFL", (int)hups);
  raise(SIGUSR2);
  conf_pass();
}
