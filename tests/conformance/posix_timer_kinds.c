/* POSIX timers of three kinds: a CLOCK_MONOTONIC one-shot at an absolute time 3 s after setup (TIMER_ABSTIME), a
 * CLOCK_BOOTTIME periodic one (20 ms), a periodic one directed at one thread (SIGEV_THREAD_ID, 30 ms). After the
 * move each fires: the absolute one once and not early, the directed one in its thread only; intervals kept. */
#include <pthread.h>
#include <time.h>

#include "conf.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static volatile sig_atomic_t fired[4], elsewhere;
static volatile pid_t workerTid;
static struct timespec firedAt; /* wall time when timer 1 fired */

static void onTimer(int sig, siginfo_t* si, void* uc) {
  (void)sig, (void)uc;
  const int k = si->si_value.sival_int;
  if (k < 1 || k > 3) return;
  if (k == 1) clock_gettime(CLOCK_REALTIME, &firedAt);
  if (k == 3 && gettid() != workerTid) ++elsewhere;
  ++fired[k];
}

static void* worker(void* arg) {
  (void)arg;
  workerTid = gettid();
  for (;;) pause();
  return NULL;
}

static double secs(struct timespec t) { return (double)t.tv_sec + t.tv_nsec / 1e9; }

int main(void) {
  conf_init();
  struct sigaction sa = {.sa_sigaction = onTimer, .sa_flags = SA_SIGINFO | SA_RESTART};
  for (int k = 1; k <= 3; ++k) CONF_CHECK(sigaction(SIGRTMIN + k, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, NULL); /* the worker does not take SIGTERM */
  pthread_t th;
  CONF_CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
  pthread_sigmask(SIG_UNBLOCK, &term, NULL);
  while (!workerTid) usleep(1000);
  struct timespec mono, wall;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &wall);
  const struct itimerspec its[4] = {
      {{0, 0}, {0, 0}},
      {{0, 0}, {mono.tv_sec + 3, mono.tv_nsec}},
      {{0, 20000000}, {0, 20000000}},
      {{0, 30000000}, {0, 30000000}},
  };
  timer_t t[4];
  for (int k = 1; k <= 3; ++k) {
    struct sigevent sev = {.sigev_value.sival_int = k, .sigev_signo = SIGRTMIN + k, .sigev_notify = SIGEV_SIGNAL};
    if (k == 3) sev.sigev_notify = SIGEV_THREAD_ID, sev.sigev_notify_thread_id = workerTid;
    CONF_CHECK(timer_create(k == 2 ? CLOCK_BOOTTIME : CLOCK_MONOTONIC, &sev, &t[k]) == 0 &&
                   timer_settime(t[k], k == 1 ? TIMER_ABSTIME : 0, &its[k], NULL) == 0,
               "timer %d: %s", k, strerror(errno));
  }
  const double due = secs(wall) + 3;
  conf_ready();
  conf_wait(NULL);
  struct itimerspec g;
  for (int k = 1; k <= 3; ++k) {
    CONF_CHECK(timer_gettime(t[k], &g) == 0, "timer %d is gone: %s", k, strerror(errno));
    CONF_CHECK(g.it_interval.tv_sec == its[k].it_interval.tv_sec && g.it_interval.tv_nsec == its[k].it_interval.tv_nsec,
               "timer %d interval %.9f s", k, secs(g.it_interval));
    CONF_CHECK(k == 1 || g.it_value.tv_sec || g.it_value.tv_nsec, "periodic timer %d disarmed", k);
  }
  timer_gettime(t[1], &g);
  CONF_CHECK(fired[1] || (secs(g.it_value) > 0 && secs(g.it_value) <= 3), "absolute timer: %.3f s left, not fired",
             secs(g.it_value));
  const int f2 = fired[2], f3 = fired[3];
  for (int i = 0; i < 400 && (!fired[1] || fired[2] < f2 + 3 || fired[3] < f3 + 3); ++i) usleep(10000);
  CONF_CHECK(fired[1] == 1, "absolute timer fired %d times", (int)fired[1]);
  CONF_CHECK(secs(firedAt) > due - 0.25, "absolute timer fired %.3f s early", due - secs(firedAt));
  CONF_CHECK(timer_gettime(t[1], &g) == 0 && !g.it_value.tv_sec && !g.it_value.tv_nsec, "one-shot timer re-armed");
  CONF_CHECK(fired[2] >= f2 + 3, "CLOCK_BOOTTIME timer stopped (%d signals)", fired[2] - f2);
  CONF_CHECK(fired[3] >= f3 + 3, "thread-directed timer stopped (%d signals)", fired[3] - f3);
  CONF_CHECK(elsewhere == 0, "%d thread-directed signals went to another thread", (int)elsewhere);
  conf_pass();
}
