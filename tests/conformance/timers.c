/* A POSIX timer (SIGUSR2 every 20 ms) and an interval timer (SIGALRM every
 * 30 ms) keep firing after the move. */
#include <sys/time.h>
#include <time.h>

#include "conf.h"

static volatile sig_atomic_t usr2, alrm;
static void onUsr2(int s) { (void)s; ++usr2; }
static void onAlrm(int s) { (void)s; ++alrm; }

int main(void) {
  conf_init();
  signal(SIGUSR2, onUsr2);
  signal(SIGALRM, onAlrm);
  struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
  timer_t t;
  CONF_CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0, "timer_create: %s", strerror(errno));
  struct itimerspec its = {{0, 20000000}, {0, 20000000}};
  CONF_CHECK(timer_settime(t, 0, &its, NULL) == 0, "timer_settime: %s", strerror(errno));
  struct itimerval iv = {{0, 30000}, {0, 30000}};
  CONF_CHECK(setitimer(ITIMER_REAL, &iv, NULL) == 0, "setitimer: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  const int u = usr2, a = alrm;
  for (int i = 0; i < 50 && (usr2 < u + 3 || alrm < a + 3); ++i) usleep(10000);
  CONF_CHECK(usr2 >= u + 3, "POSIX timer stopped (%d signals)", usr2 - u);
  CONF_CHECK(alrm >= a + 3, "itimer stopped (%d signals)", alrm - a);
  conf_pass();
}
