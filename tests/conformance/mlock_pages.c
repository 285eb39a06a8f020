/* mlock: a 1 MiB region locked with mlock and one locked with
 * mlock2(MLOCK_ONFAULT), half of it touched; VmLck, the "lo" VmFlag, the
 * ONFAULT half not faulted in, and contents kept. */
#include <sys/mman.h>

#include "conf.h"

#define SZ (1ul << 20)
/* Seeds apart above bit 13: conf_byte streams of nearby small seeds are nearly identical. */
#define S(n) ((unsigned)(n) << 13)

/* The "VmLck:" of /proc/self/status in kB, or -1. */
static long vmlck(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmLck: %ld kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

/* 1 if the smaps VmFlags of the mapping holding `p` have "lo"; its Locked: in kB goes to *locked. */
static int locked_flag(const void* p, long* locked) {
  FILE* f = fopen("/proc/self/smaps", "r");
  CONF_CHECK(f, "smaps: %s", strerror(errno));
  char line[512];
  int in = 0, found = 0;
  unsigned long lo, hi;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) in = (unsigned long)p >= lo && (unsigned long)p < hi;
    if (!in) continue;
    sscanf(line, "Locked: %ld kB", locked);
    if (strncmp(line, "VmFlags:", 8) == 0) found = strstr(line, " lo ") || strstr(line, " lo\n");
  }
  fclose(f);
  return found;
}

int main(void) {
  conf_init();
  /* Separated by a PROT_NONE hole so the two never merge. */
  unsigned char* base = mmap(NULL, 3 * SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CONF_CHECK(base != MAP_FAILED, "mmap: %s", strerror(errno));
  unsigned char* a = base;
  unsigned char* b = base + 2 * SZ;
  CONF_CHECK(mprotect(a, SZ, PROT_READ | PROT_WRITE) == 0 && mprotect(b, SZ, PROT_READ | PROT_WRITE) == 0,
             "mprotect: %s", strerror(errno));
  conf_fill(a, SZ, S(50), 0);
  CONF_CHECK(mlock(a, SZ) == 0, "mlock: %s", strerror(errno));
  CONF_CHECK(mlock2(b, SZ, MLOCK_ONFAULT) == 0, "mlock2(MLOCK_ONFAULT): %s", strerror(errno));
  conf_fill(b, SZ / 2, S(51), 0);
  const long lck = vmlck();
  long la = 0, lb = 0;
  CONF_CHECK(lck >= 1024 && locked_flag(a, &la) && locked_flag(b, &lb), "not locked before the move (VmLck %ld kB)",
             lck);
  conf_ready();
  conf_wait(NULL);
  long la2 = 0, lb2 = 0;
  CONF_CHECK(vmlck() == lck, "VmLck %ld kB, was %ld kB", vmlck(), lck);
  CONF_CHECK(locked_flag(a, &la2), "mlock'ed region lost its \"lo\" VmFlag");
  CONF_CHECK(locked_flag(b, &lb2), "MLOCK_ONFAULT region lost its \"lo\" VmFlag");
  CONF_CHECK(la2 == la && lb2 == lb, "smaps Locked: %ld and %ld kB, were %ld and %ld kB", la2, lb2, la, lb);
  unsigned char vec[SZ / 4096];
  CONF_CHECK(mincore(b, SZ, vec) == 0, "mincore: %s", strerror(errno));
  for (size_t i = SZ / 2 / 4096; i < SZ / 4096; ++i)
    CONF_CHECK(!(vec[i] & 1), "MLOCK_ONFAULT region: untouched page %zu is resident (locked eagerly)", i);
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(a[i] == conf_byte(S(50), i), "mlock'ed byte %zu differs", i);
  for (size_t i = 0; i < SZ; ++i)
    CONF_CHECK(b[i] == (i < SZ / 2 ? conf_byte(S(51), i) : 0), "MLOCK_ONFAULT byte %zu differs", i);
  conf_pass();
}
