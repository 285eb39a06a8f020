/* Interval timers: ITIMER_VIRTUAL and ITIMER_PROF (10 ms) on a process busy a third of the time keep signalling
 * with their intervals; ITIMER_REAL (2000 s, interval 1000 s) keeps its interval and a plausible remaining value
 * (at most 2000 s, at least 2000 s minus the wall time since it was armed). */
#include <sys/time.h>
#include <time.h>

#include "conf.h"

static volatile sig_atomic_t vt, prof, alrm;
static void onSig(int s) {
  if (s == SIGVTALRM) ++vt;
  if (s == SIGPROF) ++prof;
  if (s == SIGALRM) ++alrm;
}

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* About 5 ms busy in user mode. */
static void spin(void) {
  const double end = now(CLOCK_MONOTONIC) + 0.005;
  for (volatile unsigned i = 0; now(CLOCK_MONOTONIC) < end; ++i) {
  }
}

static void checkCpuTimer(int which, const char* name) {
  struct itimerval g;
  CONF_CHECK(getitimer(which, &g) == 0, "getitimer: %s", strerror(errno));
  CONF_CHECK(g.it_interval.tv_sec == 0 && g.it_interval.tv_usec == 10000, "%s interval %ld.%06ld s", name,
             (long)g.it_interval.tv_sec, (long)g.it_interval.tv_usec);
  CONF_CHECK(g.it_value.tv_sec || g.it_value.tv_usec, "%s disarmed", name);
}

int main(void) {
  conf_init();
  struct sigaction sa = {.sa_handler = onSig};
  CONF_CHECK(
      sigaction(SIGVTALRM, &sa, NULL) == 0 && sigaction(SIGPROF, &sa, NULL) == 0 && sigaction(SIGALRM, &sa, NULL) == 0,
      "sigaction: %s", strerror(errno));
  const struct itimerval cpu = {{0, 10000}, {0, 10000}}, real = {{1000, 0}, {2000, 0}};
  CONF_CHECK(setitimer(ITIMER_VIRTUAL, &cpu, NULL) == 0 && setitimer(ITIMER_PROF, &cpu, NULL) == 0 &&
                 setitimer(ITIMER_REAL, &real, NULL) == 0,
             "setitimer: %s", strerror(errno));
  const double armed = now(CLOCK_REALTIME);
  while (vt < 2 || prof < 2) spin();
  conf_ready();
  conf_wait(spin);
  checkCpuTimer(ITIMER_VIRTUAL, "ITIMER_VIRTUAL");
  checkCpuTimer(ITIMER_PROF, "ITIMER_PROF");
  struct itimerval g;
  CONF_CHECK(getitimer(ITIMER_REAL, &g) == 0, "getitimer: %s", strerror(errno));
  CONF_CHECK(g.it_interval.tv_sec == 1000 && g.it_interval.tv_usec == 0, "ITIMER_REAL interval %ld.%06ld s",
             (long)g.it_interval.tv_sec, (long)g.it_interval.tv_usec);
  const double left = (double)g.it_value.tv_sec + g.it_value.tv_usec / 1e6, elapsed = now(CLOCK_REALTIME) - armed;
  CONF_CHECK(left <= 2000 && left >= 2000 - elapsed - 2,
             "ITIMER_REAL has %.3f s left, %.3f s after it was armed (2000)", left, elapsed);
  CONF_CHECK(alrm == 0, "ITIMER_REAL fired %d times", (int)alrm);
  const int v = vt, p = prof;
  const double end = now(CLOCK_MONOTONIC) + 2;
  while ((vt < v + 3 || prof < p + 3) && now(CLOCK_MONOTONIC) < end) spin();
  CONF_CHECK(vt >= v + 3, "ITIMER_VIRTUAL stopped (%d signals in 2 s busy)", vt - v);
  CONF_CHECK(prof >= p + 3, "ITIMER_PROF stopped (%d signals in 2 s busy)", prof - p);
  conf_pass();
}
