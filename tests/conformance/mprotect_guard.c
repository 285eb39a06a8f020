/* Protections: RW regions separated by PROT_NONE guards, a read-only region
 * and an executable one (a tiny function on x86-64), all with content; after
 * the move the guards and the read-only region fault (SIGSEGV, SEGV_ACCERR). */
#include <setjmp.h>
#include <sys/mman.h>

#include "conf.h"

#define CH 65536ul
enum { RW1, GUARD1, RW2, GUARD2, RO, GUARD3, EXEC, N };
static const int prot[N] = {PROT_READ | PROT_WRITE, PROT_NONE, PROT_READ | PROT_WRITE, PROT_NONE, PROT_READ, PROT_NONE,
                            PROT_READ | PROT_EXEC};
static const char* const perms[N] = {"rw-p", "---p", "rw-p", "---p", "r--p", "---p", "r-xp"};

static sigjmp_buf jb;
static volatile int segv_code;
static void on_segv(int sig, siginfo_t* si, void* uc) {
  (void)sig, (void)uc;
  segv_code = si->si_code;
  siglongjmp(jb, 1);
}

/* The si_code of the SIGSEGV an access raises, 0 if none. */
static int probe(volatile unsigned char* p, int write) {
  segv_code = 0;
  if (sigsetjmp(jb, 1) == 0) {
    if (write) *p = 1;
    else (void)*p;
  }
  return segv_code;
}

/* The permissions in /proc/self/maps of the mapping holding `p`. */
static void perms_of(const void* p, char out[5]) {
  FILE* f = fopen("/proc/self/maps", "r");
  char line[512];
  unsigned long lo, hi;
  strcpy(out, "none");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, out) == 3 && (unsigned long)p >= lo && (unsigned long)p < hi) break;
  if (f) fclose(f);
}

int main(void) {
  conf_init();
  unsigned char* m = mmap(NULL, N * CH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CONF_CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
  conf_fill(m, N * CH, 60, 0);
#if defined(__x86_64__)
  static const unsigned char code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3}; /* mov eax, 42; ret */
  memcpy(m + EXEC * CH, code, sizeof code);
#endif
  for (int k = 0; k < N; ++k) CONF_CHECK(mprotect(m + k * CH, CH, prot[k]) == 0, "mprotect: %s", strerror(errno));
  struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER};
  sigaction(SIGSEGV, &sa, NULL);
  conf_ready();
  conf_wait(NULL);
  for (int k = 0; k < N; ++k) {
    char p[5];
    perms_of(m + k * CH, p);
    CONF_CHECK(strcmp(p, perms[k]) == 0, "region %d: maps says %s, was %s", k, p, perms[k]);
  }
  CONF_CHECK(probe(m + GUARD1 * CH, 0) == SEGV_ACCERR, "reading guard 1: no SIGSEGV/SEGV_ACCERR (%d)", segv_code);
  CONF_CHECK(probe(m + GUARD2 * CH + CH - 1, 1) == SEGV_ACCERR, "writing guard 2: no SIGSEGV/SEGV_ACCERR (%d)",
             segv_code);
  CONF_CHECK(probe(m + GUARD3 * CH + 100, 1) == SEGV_ACCERR, "writing guard 3: no SIGSEGV/SEGV_ACCERR");
  CONF_CHECK(probe(m + RO * CH + 5, 1) == SEGV_ACCERR, "writing the read-only region: no SIGSEGV/SEGV_ACCERR");
  CONF_CHECK(probe(m + EXEC * CH + 5, 1) == SEGV_ACCERR, "writing the exec region: no SIGSEGV/SEGV_ACCERR");
  for (int k = 0; k < N; ++k) {
    if (prot[k] == PROT_NONE) continue;
    for (size_t i = (k == EXEC ? 6 : 0); i < CH; ++i)
      CONF_CHECK(m[k * CH + i] == conf_byte(60, k * CH + i), "region %d: byte %zu differs", k, i);
  }
#if defined(__x86_64__)
  CONF_CHECK(((int (*)(void))(void*)(m + EXEC * CH))() == 42, "the exec region's code returns something else");
#endif
  CONF_CHECK(probe(m + RW1 * CH, 1) == 0 && probe(m + RW2 * CH + CH - 1, 1) == 0, "writing a RW region faults");
  conf_pass();
}
