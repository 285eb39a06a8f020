/* A memfd with content and seals (no shrink, no grow, no more seals). */
#include <sys/mman.h>

#include "conf.h"

int main(void) {
  conf_init();
  int m = memfd_create("conf-sealed", MFD_ALLOW_SEALING);
  CONF_CHECK(m >= 0 && ftruncate(m, 65536) == 0, "memfd: %s", strerror(errno));
  unsigned char buf[65536];
  conf_fill(buf, sizeof buf, 13, 0);
  CONF_CHECK(pwrite(m, buf, sizeof buf, 0) == (ssize_t)sizeof buf, "pwrite: %s", strerror(errno));
  CONF_CHECK(fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0, "seal: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  const int seals = fcntl(m, F_GET_SEALS);
  CONF_CHECK(seals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "seals %#x", seals);
  CONF_CHECK(ftruncate(m, 10) != 0, "shrink allowed after the move");
  memset(buf, 0, sizeof buf);
  CONF_CHECK(pread(m, buf, sizeof buf, 0) == (ssize_t)sizeof buf, "pread: %s", strerror(errno));
  for (size_t i = 0; i < sizeof buf; ++i) CONF_CHECK(buf[i] == conf_byte(13, i), "byte %zu differs", i);
  conf_pass();
}
