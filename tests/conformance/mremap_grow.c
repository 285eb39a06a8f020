/* mremap: an anonymous mapping grown 1 -> 4 MiB (moved: a page blocks it in
 * place), one moved to a chosen address (MREMAP_FIXED) inside a PROT_NONE
 * reservation, one shrunk 2 MiB -> 512 KiB; contents and holes kept. */
#include <sys/mman.h>

#include "conf.h"

#define MIB (1ul << 20)
/* Seeds apart above bit 13: conf_byte streams of nearby small seeds are nearly identical. */
#define S(n) ((unsigned)(n) << 13)

static unsigned char vec[2 * MIB / 4096];

/* 1 if no page of [p, p+n) is mapped (mincore says ENOMEM for each). */
static int unmapped(unsigned char* p, size_t n) {
  for (size_t off = 0; off < n; off += 4096)
    if (mincore(p + off, 4096, vec) == 0 || errno != ENOMEM) return 0;
  return 1;
}

/* 1 if every page of [p, p+n) is mapped. */
static int mapped(unsigned char* p, size_t n) { return mincore(p, n, vec) == 0; }

static void check(const unsigned char* p, size_t n, unsigned seed, const char* what) {
  for (size_t i = 0; i < n; ++i) CONF_CHECK(p[i] == conf_byte(seed, i), "%s: byte %zu differs", what, i);
}

int main(void) {
  conf_init();
  const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
  unsigned char* g = mmap(NULL, MIB, rw, anon, -1, 0);
  unsigned char* f = mmap(NULL, MIB, rw, anon, -1, 0);
  unsigned char* res = mmap(NULL, 2 * MIB, PROT_NONE, anon, -1, 0);
  unsigned char* s = mmap(NULL, 2 * MIB, rw, anon, -1, 0);
  CONF_CHECK(g != MAP_FAILED && f != MAP_FAILED && res != MAP_FAILED && s != MAP_FAILED, "mmap: %s", strerror(errno));
  void* blk = mmap(g + MIB, 4096, PROT_READ, anon | MAP_FIXED_NOREPLACE, -1, 0);
  CONF_CHECK(blk != MAP_FAILED || errno == EEXIST, "blocking page: %s", strerror(errno));
  conf_fill(g, MIB, S(21), 0);
  conf_fill(f, MIB, S(22), 0);
  conf_fill(s, 2 * MIB, S(23), 0);
  unsigned char* g2 = mremap(g, MIB, 4 * MIB, MREMAP_MAYMOVE);
  CONF_CHECK(g2 != MAP_FAILED && g2 != g, "mremap grow: %s", g2 == g ? "not moved" : strerror(errno));
  conf_fill(g2 + MIB, 3 * MIB, S(21), MIB);
  unsigned char* f2 = mremap(f, MIB, MIB, MREMAP_MAYMOVE | MREMAP_FIXED, res + MIB / 2);
  CONF_CHECK(f2 == res + MIB / 2, "mremap fixed: %s", strerror(errno));
  CONF_CHECK(mremap(s, 2 * MIB, MIB / 2, 0) == s, "mremap shrink: %s", strerror(errno));
  CONF_CHECK(unmapped(f, MIB) && unmapped(s + MIB / 2, MIB + MIB / 2), "old ranges still mapped");
  conf_ready();
  conf_wait(NULL);
  check(g2, 4 * MIB, S(21), "grown mapping");
  check(f2, MIB, S(22), "moved (MREMAP_FIXED) mapping");
  check(s, MIB / 2, S(23), "shrunk mapping");
  CONF_CHECK(unmapped(f, MIB), "the moved mapping's old range is mapped again");
  CONF_CHECK(unmapped(s + MIB / 2, MIB + MIB / 2), "the shrunk mapping's tail is mapped again");
  CONF_CHECK(mapped(res, MIB / 2) && mapped(f2 + MIB, MIB / 2), "the PROT_NONE reservation around it is gone");
  unsigned char* g3 = mremap(g2, 4 * MIB, 8 * MIB, MREMAP_MAYMOVE);
  CONF_CHECK(g3 != MAP_FAILED, "mremap after the move: %s", strerror(errno));
  check(g3, 4 * MIB, S(21), "grown again after the move");
  g3[8 * MIB - 1] = 1;
  conf_pass();
}
