/* 64 MiB dirtied all the time (one generation per pass) and a heap that
 * grows by 1 MiB every 10 ms up to 128 MiB, during the whole migration. */
#include "conf.h"

#define DIRTY (64u << 20)
#define GROW_MAX 128

static unsigned char* dirty;
static unsigned generation;
static size_t cursor;
static unsigned char* grown[GROW_MAX];
static int nGrown;

static void tick(void) {
  for (int k = 0; k < 256 && !conf_term; ++k) {  /* 1 MiB of pages per tick */
    dirty[cursor] = (unsigned char)generation;
    cursor += 4096;
    if (cursor >= DIRTY) {
      cursor = 0;
      ++generation;
    }
  }
  if (nGrown < GROW_MAX) {
    grown[nGrown] = malloc(1 << 20);
    CONF_CHECK(grown[nGrown] != NULL, "malloc");
    conf_fill(grown[nGrown], 1 << 20, 10 + (unsigned)nGrown, 0);
    ++nGrown;
  }
}

int main(void) {
  conf_init();
  dirty = malloc(DIRTY);
  CONF_CHECK(dirty != NULL, "malloc");
  memset(dirty, 0, DIRTY);
  conf_ready();
  conf_wait(tick);
  /* Pages before the cursor carry this generation, the rest the previous. */
  for (size_t off = 0; off < DIRTY; off += 4096) {
    const unsigned want = off < cursor ? generation : generation - 1;
    CONF_CHECK(generation == 0 ? dirty[off] == (off < cursor ? 0 : 0) : dirty[off] == (unsigned char)want,
               "page at %zu: generation %u, want %u", off, dirty[off], want);
  }
  for (int g = 0; g < nGrown; ++g)
    for (size_t i = 0; i < (1 << 20); i += 997)
      CONF_CHECK(grown[g][i] == conf_byte(10 + (unsigned)g, i), "grown block %d differs", g);
  conf_pass();
}
