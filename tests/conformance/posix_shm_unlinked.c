/* POSIX shared memory unlinked while mapped: /dev/shm looks empty, yet an
 * object of its tmpfs lives on in the mapping (lxmig keeps an empty
 * /dev/shm out of CRIU's images; this one must still travel). */
#include <sys/mman.h>

#include "conf.h"

int main(void) {
  conf_init();
  shm_unlink("/conf-shm-gone");
  int fd = shm_open("/conf-shm-gone", O_CREAT | O_RDWR, 0600);
  CONF_CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "shm_open: %s", strerror(errno));
  unsigned char* p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CONF_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
  CONF_CHECK(shm_unlink("/conf-shm-gone") == 0 && close(fd) == 0, "unlink: %s", strerror(errno));
  conf_fill(p, 1 << 20, 7, 0);
  conf_ready();
  conf_wait(NULL);
  for (size_t i = 0; i < (1 << 20); ++i) CONF_CHECK(p[i] == conf_byte(7, i), "shm byte %zu differs", i);
  p[0] ^= 1;  /* still writable */
  CONF_CHECK(p[0] == (unsigned char)(conf_byte(7, 0) ^ 1), "write after restore");
  conf_pass();
}
