/* A parent and its child: a MAP_SHARED|MAP_ANONYMOUS region both write (each
 * sees the other's writes, also after the move) and a private region written
 * before fork, then diverged in both (copy-on-write). The child reports by pipe. */
#include <sys/mman.h>
#include <sys/wait.h>

#include "conf.h"

#define SZ (1ul << 20)
#define H (SZ / 2)
#define PG 4096ul
/* Seeds apart above bit 13: conf_byte streams of nearby small seeds are nearly identical. */
#define S(n) ((unsigned)(n) << 13)

static unsigned char *sh, *pv;

/* Empty if [p, p+n) holds stream `seed` from `from`, else a description. */
static const char* differs(const unsigned char* p, size_t n, unsigned seed, size_t from, const char* what) {
  static char msg[160];
  for (size_t i = 0; i < n; ++i)
    if (p[i] != conf_byte(seed, from + i)) {
      snprintf(msg, sizeof msg, "%s: byte %zu differs", what, from + i);
      return msg;
    }
  return "";
}

/* Keeps the first difference found (differs() reuses its buffer). */
#define FIRST(...) \
  if (!*why) why = __VA_ARGS__

static void child(int rd, int wr) {
  char c;
  CONF_CHECK(write(wr, "r", 1) == 1, "child: write: %s", strerror(errno));
  if (read(rd, &c, 1) != 1) _exit(1);
  const char* why = "";
  FIRST(differs(sh, PG, S(36), 0, "child: shared page the parent wrote after the move"));
  FIRST(differs(sh + PG, H - PG, S(32), PG, "child: shared half the parent wrote"));
  FIRST(differs(sh + H, H - PG, S(33), H, "child: shared half the child wrote"));
  FIRST(differs(pv, H, S(34), 0, "child: private half the child wrote"));
  FIRST(differs(pv + H, H, S(31), H, "child: private half written before fork (the parent's writes leaked)"));
  conf_fill(sh + SZ - PG, PG, S(37), SZ - PG);
  const size_t n = strlen(why) + 1;
  if (write(wr, why, n) != (ssize_t)n) _exit(1);
  _exit(0);
}

int main(void) {
  conf_init();
  sh = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pv = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CONF_CHECK(sh != MAP_FAILED && pv != MAP_FAILED, "mmap: %s", strerror(errno));
  conf_fill(pv, SZ, S(31), 0);
  int p2c[2], c2p[2];
  CONF_CHECK(pipe(p2c) == 0 && pipe(c2p) == 0, "pipe: %s", strerror(errno));
  pid_t c = fork();
  CONF_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    close(p2c[1]);
    close(c2p[0]);
    conf_fill(sh + H, H, S(33), H);
    conf_fill(pv, H, S(34), 0);
    child(p2c[0], c2p[1]);
  }
  close(p2c[0]);
  close(c2p[1]);
  conf_fill(sh, H, S(32), 0);
  conf_fill(pv + H, H, S(35), H);
  char msg[200] = {0};
  CONF_CHECK(read(c2p[0], msg, 1) == 1, "child did not start");
  conf_ready();
  conf_wait(NULL);
  conf_fill(sh, PG, S(36), 0);
  CONF_CHECK(write(p2c[1], "g", 1) == 1, "child gone: %s", strerror(errno));
  size_t got = 0;
  for (ssize_t n; got < sizeof msg && (n = read(c2p[0], msg + got, sizeof msg - got)) > 0;) got += (size_t)n;
  CONF_CHECK(got > 0, "no report from the child");
  CONF_CHECK(!msg[0], "%s", msg);
  int st;
  CONF_CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
  const char* why = "";
  FIRST(differs(sh + PG, H - PG, S(32), PG, "parent: shared half the parent wrote"));
  FIRST(differs(sh + H, H - PG, S(33), H, "parent: shared half the child wrote"));
  FIRST(differs(sh + SZ - PG, PG, S(37), SZ - PG, "parent: shared page the child wrote after the move"));
  FIRST(differs(pv, H, S(31), 0, "parent: private half written before fork (the child's writes leaked)"));
  FIRST(differs(pv + H, H, S(35), H, "parent: private half the parent wrote"));
  CONF_CHECK(!*why, "%s", why);
  conf_pass();
}
