/* madvise advice kept: DONTFORK (a child does not have it), WIPEONFORK (a
 * child sees zeros), FREE'd pages (kept or zero, never garbage), HUGEPAGE /
 * NOHUGEPAGE and DONTDUMP (VmFlags hg, nh, dd in smaps); contents kept. */
#include <sys/mman.h>
#include <sys/wait.h>

#include "conf.h"

#define SZ (4ul << 20)
/* Seeds apart above bit 13: conf_byte streams of nearby small seeds are nearly identical. */
#define S(n) ((unsigned)(n) << 13)

enum { DONTFORK, WIPEONFORK, FREE, HUGE, NOHUGE, DONTDUMP, N };
static const int advice[N] = {MADV_DONTFORK, MADV_WIPEONFORK, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTDUMP};
static const char* const names[N] = {"DONTFORK", "WIPEONFORK", "FREE", "HUGEPAGE", "NOHUGEPAGE", "DONTDUMP"};
static const char* const flags[N] = {"dc", "wf", NULL, "hg", "nh", "dd"};

/* 1 if the smaps VmFlags of the mapping holding `p` have `flag`. */
static int has_flag(const void* p, const char* flag) {
  FILE* f = fopen("/proc/self/smaps", "r");
  CONF_CHECK(f, "smaps: %s", strerror(errno));
  char line[512], want[8];
  snprintf(want, sizeof want, " %s ", flag);
  int in = 0, found = 0;
  unsigned long lo, hi;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) in = (unsigned long)p >= lo && (unsigned long)p < hi;
    else if (in && strncmp(line, "VmFlags:", 8) == 0) {
      line[strcspn(line, "\n")] = ' ';
      strcat(line, " ");
      found = strstr(line + 8, want) != NULL;
    }
  }
  fclose(f);
  return found;
}

int main(void) {
  conf_init();
  unsigned char* r[N];
  for (int k = 0; k < N; ++k) {
    r[k] = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CONF_CHECK(r[k] != MAP_FAILED, "mmap: %s", strerror(errno));
    conf_fill(r[k], SZ, S(40 + k), 0);
    CONF_CHECK(madvise(r[k], SZ, advice[k]) == 0, "madvise(%s): %s", names[k], strerror(errno));
    CONF_CHECK(!flags[k] || has_flag(r[k], flags[k]), "%s: no VmFlag %s before the move", names[k], flags[k]);
  }
  conf_ready();
  conf_wait(NULL);
  for (int k = 0; k < N; ++k) {
    CONF_CHECK(!flags[k] || has_flag(r[k], flags[k]), "%s region lost its VmFlag %s", names[k], flags[k]);
    for (size_t pg = 0; pg < SZ; pg += 4096) {
      int zero = 1, same = 1;
      for (size_t i = pg; i < pg + 4096; ++i) {
        zero &= r[k][i] == 0;
        same &= r[k][i] == conf_byte(S(40 + k), i);
      }
      CONF_CHECK(same || (k == FREE && zero), "%s region: page at %zu differs%s", names[k], pg,
                 k == FREE ? " (neither kept nor zero)" : "");
    }
  }
  pid_t c = fork();
  CONF_CHECK(c >= 0, "fork: %s", strerror(errno));
  if (c == 0) {
    static unsigned char vec[SZ / 4096];
    const int dontfork_gone = mincore(r[DONTFORK], SZ, vec) != 0 && errno == ENOMEM;
    int wiped = 1;
    for (size_t i = 0; i < SZ; ++i) wiped &= r[WIPEONFORK][i] == 0;
    _exit((dontfork_gone ? 0 : 1) | (wiped ? 0 : 2));
  }
  int st;
  CONF_CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st), "child did not exit");
  CONF_CHECK(!(WEXITSTATUS(st) & 1), "DONTFORK region present in a child forked after the move");
  CONF_CHECK(!(WEXITSTATUS(st) & 2), "WIPEONFORK region not zero in a child forked after the move");
  for (size_t i = 0; i < SZ; ++i)
    CONF_CHECK(r[WIPEONFORK][i] == conf_byte(S(41), i), "WIPEONFORK parent's copy changed");
  conf_pass();
}
