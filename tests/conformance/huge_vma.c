/* A 10 GiB reservation (PROT_NONE, no memory behind it) with a few pages
 * touched after an mprotect, and guard pages around a stack-like region. */
#include <sys/mman.h>

#include "conf.h"

#define HUGE (10ull << 30)

int main(void) {
  conf_init();
  unsigned char* p = mmap(NULL, HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CONF_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
  const size_t offs[4] = {0, 1ull << 30, 5ull << 30, HUGE - 4096};
  for (int i = 0; i < 4; ++i) {
    CONF_CHECK(mprotect(p + offs[i], 4096, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
    conf_fill(p + offs[i], 4096, 12 + (unsigned)i, 0);
  }
  conf_ready();
  conf_wait(NULL);
  for (int i = 0; i < 4; ++i)
    for (size_t k = 0; k < 4096; ++k) CONF_CHECK(p[offs[i] + k] == conf_byte(12 + (unsigned)i, k), "page %d differs", i);
  conf_pass();
}
