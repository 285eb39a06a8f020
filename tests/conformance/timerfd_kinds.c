/* timerfds: a CLOCK_MONOTONIC one-shot at an absolute time 3 s ahead
 * (TFD_TIMER_ABSTIME), CLOCK_REALTIME (50 ms) and CLOCK_BOOTTIME (100 ms)
 * periodic ones never read; clocks, flags, intervals kept, expirations
 * neither lost nor more than the wall-clock time allows. */
#include <poll.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>

#include "conf.h"

enum { MONO, REAL, BOOT, N };
static const clockid_t clk[N] = {CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME};
static const char* const names[N] = {"MONOTONIC one-shot", "REALTIME periodic", "BOOTTIME periodic"};
static const long period_ms[N] = {0, 50, 100};
#define DELAY_S 3

static int fd[N];
static unsigned long max_ticks[N];
static double t0, mono_fired_at;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* From /proc/self/fdinfo: clockid, ticks (expirations not read yet) and settime flags. */
static void info(int f, int* clockid, unsigned long* ticks, int* flags) {
  char path[64], line[128];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", f);
  FILE* in = fopen(path, "r");
  *clockid = *flags = -1;
  while (in && fgets(line, sizeof line, in)) {
    sscanf(line, "clockid: %d", clockid);
    sscanf(line, "ticks: %lu", ticks);
    sscanf(line, "settime flags: %o", (unsigned*)flags);
  }
  if (in) fclose(in);
}

static void tick(void) {
  for (int k = 0; k < N; ++k) {
    int c, fl;
    unsigned long t = 0;
    info(fd[k], &c, &t, &fl);
    if (t > max_ticks[k]) max_ticks[k] = t;
    if (k == MONO && t && !mono_fired_at) mono_fired_at = now();
  }
}

int main(void) {
  conf_init();
  for (int k = 0; k < N; ++k) {
    fd[k] = timerfd_create(clk[k], TFD_NONBLOCK);
    CONF_CHECK(fd[k] >= 0, "timerfd_create: %s", strerror(errno));
  }
  struct timespec m;
  clock_gettime(CLOCK_MONOTONIC, &m);
  t0 = now();
  struct itimerspec once = {.it_value = {m.tv_sec + DELAY_S, m.tv_nsec}};
  CONF_CHECK(timerfd_settime(fd[MONO], TFD_TIMER_ABSTIME, &once, NULL) == 0, "settime: %s", strerror(errno));
  for (int k = REAL; k < N; ++k) {
    struct itimerspec p = {{0, period_ms[k] * 1000000}, {0, period_ms[k] * 1000000}};
    CONF_CHECK(timerfd_settime(fd[k], 0, &p, NULL) == 0, "settime: %s", strerror(errno));
  }
  conf_ready();
  conf_wait(tick);
  tick();
  const double elapsed = now() - t0;
  for (int k = 0; k < N; ++k) {
    int c, fl;
    unsigned long t = 0;
    info(fd[k], &c, &t, &fl);
    CONF_CHECK(c == (int)clk[k], "%s: clockid %d, was %d", names[k], c, (int)clk[k]);
    CONF_CHECK(fl == (k == MONO ? TFD_TIMER_ABSTIME : 0), "%s: settime flags %#o", names[k], fl);
    struct itimerspec cur;
    CONF_CHECK(timerfd_gettime(fd[k], &cur) == 0, "gettime: %s", strerror(errno));
    CONF_CHECK(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == period_ms[k] * 1000000,
               "%s: interval %ld.%09ld s", names[k], (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
  }
  uint64_t n = 0;
  for (int k = REAL; k < N; ++k) {
    CONF_CHECK(read(fd[k], &n, 8) == 8, "%s: no expirations (%s)", names[k], strerror(errno));
    CONF_CHECK(n >= max_ticks[k], "%s: %llu expirations, %lu were counted before", names[k], (unsigned long long)n,
               max_ticks[k]);
    CONF_CHECK(n <= elapsed * 1000 / period_ms[k] + 2, "%s: %llu expirations in %.2f s", names[k],
               (unsigned long long)n, elapsed);
    usleep(2 * period_ms[k] * 1000 + 20000);
    CONF_CHECK(read(fd[k], &n, 8) == 8 && n >= 1 && n <= 4, "%s: does not fire after the move", names[k]);
  }
  if (!mono_fired_at) {
    struct itimerspec cur;
    timerfd_gettime(fd[MONO], &cur);
    const double left = (double)cur.it_value.tv_sec + cur.it_value.tv_nsec / 1e9;
    CONF_CHECK(left > 0 && left <= DELAY_S - (now() - t0) + 1, "%s: %.2f s left after %.2f s", names[MONO], left,
               now() - t0);
    struct pollfd p = {.fd = fd[MONO], .events = POLLIN};
    CONF_CHECK(poll(&p, 1, (int)(left * 1000) + 500) == 1, "%s: does not fire (%.2f s were left)", names[MONO], left);
    mono_fired_at = now();
  }
  CONF_CHECK(mono_fired_at - t0 >= DELAY_S - 0.1, "%s: fired after %.2f s", names[MONO], mono_fired_at - t0);
  CONF_CHECK(read(fd[MONO], &n, 8) == 8 && n == 1, "%s: %llu expirations", names[MONO], (unsigned long long)n);
  conf_pass();
}
