/* Pipe capacities: F_SETPIPE_SZ to 4 pages and to 1 MiB, each partly filled,
 * and a default pipe filled by a non-blocking writer until EAGAIN. Sizes,
 * bytes and the full pipe's EAGAIN are kept. */
#include "conf.h"

#define BIG (1 << 20)

static size_t fillTo(int fd, unsigned seed, size_t from, size_t limit) {
  unsigned char buf[4096];
  size_t sent = from;
  while (sent < limit) {
    conf_fill(buf, sizeof buf, seed, sent);
    ssize_t n = write(fd, buf, limit - sent < sizeof buf ? limit - sent : sizeof buf);
    if (n < 0 && errno == EAGAIN) break;
    CONF_CHECK(n > 0, "write: %s", strerror(errno));
    sent += (size_t)n;
  }
  return sent;
}

static void drain(int fd, unsigned seed, size_t want, const char* name) {
  static unsigned char buf[BIG];
  size_t got = 0;
  ssize_t n;
  while (got < want && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i)
      CONF_CHECK(buf[i] == conf_byte(seed, got + (size_t)i), "%s: byte %zu differs", name, got + (size_t)i);
    got += (size_t)n;
  }
  CONF_CHECK(got == want && read(fd, buf, 1) == -1 && errno == EAGAIN, "%s: %zu bytes, not %zu", name, got, want);
}

int main(void) {
  conf_init();
  const int page = (int)sysconf(_SC_PAGESIZE);
  int a[2], b[2], c[2];
  CONF_CHECK(pipe2(a, O_NONBLOCK) == 0 && pipe2(b, O_NONBLOCK) == 0 && pipe(c) == 0, "pipe: %s", strerror(errno));
  CONF_CHECK(fcntl(a[1], F_SETPIPE_SZ, 4 * page) == 4 * page && fcntl(b[1], F_SETPIPE_SZ, BIG) == BIG,
             "F_SETPIPE_SZ: %s", strerror(errno));
  CONF_CHECK(fcntl(c[1], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
  const size_t qa = fillTo(a[1], 81, 0, 5000), qb = fillTo(b[1], 82, 0, 300 * 1024 + 123);
  const size_t qc = fillTo(c[1], 83, 0, 4 * BIG);
  const int sc0 = fcntl(c[1], F_GETPIPE_SZ);
  CONF_CHECK(qa == 5000 && qb == 300 * 1024 + 123 && qc == (size_t)sc0, "queued %zu/%zu/%zu", qa, qb, qc);
  conf_ready();
  conf_wait(NULL);
  const int sa = fcntl(a[0], F_GETPIPE_SZ), sb = fcntl(b[0], F_GETPIPE_SZ), sc = fcntl(c[0], F_GETPIPE_SZ);
  CONF_CHECK(sa == 4 * page && sb == BIG && sc == sc0, "pipe sizes %d/%d/%d, not %d/%d/%d", sa, sb, sc, 4 * page, BIG,
             sc0);
  CONF_CHECK(fcntl(c[1], F_GETFL) & O_NONBLOCK, "full pipe's writer lost O_NONBLOCK");
  CONF_CHECK(write(c[1], "x", 1) == -1 && errno == EAGAIN, "full pipe's writer does not get EAGAIN: %s",
             strerror(errno));
  /* Fill the sized pipes up: they take their size, less at most a partly used page. */
  const size_t fa = fillTo(a[1], 81, qa, 4 * BIG), fb = fillTo(b[1], 82, qb, 4 * BIG);
  CONF_CHECK(fa <= (size_t)4 * page && fa + 2 * page > (size_t)4 * page, "4-page pipe took %zu bytes", fa);
  CONF_CHECK(fb <= BIG && fb + 2 * page > BIG, "1 MiB pipe took %zu bytes", fb);
  drain(a[0], 81, fa, "4-page pipe");
  drain(b[0], 82, fb, "1 MiB pipe");
  CONF_CHECK(fcntl(c[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
  drain(c[0], 83, qc, "full pipe");
  conf_pass();
}
