/* POSIX shared memory (shm_open), mapped, with content. */
#include <sys/mman.h>

#include "conf.h"

int main(void) {
  conf_init();
  shm_unlink("/conf-shm");
  int fd = shm_open("/conf-shm", O_CREAT | O_RDWR, 0600);
  CONF_CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "shm_open: %s", strerror(errno));
  unsigned char* p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CONF_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
  conf_fill(p, 1 << 20, 6, 0);
  conf_ready();
  conf_wait(NULL);
  for (size_t i = 0; i < (1 << 20); ++i) CONF_CHECK(p[i] == conf_byte(6, i), "shm byte %zu differs", i);
  unsigned char b = 0;
  CONF_CHECK(pread(fd, &b, 1, 5) == 1 && b == conf_byte(6, 5), "shm file differs");
  conf_pass();
}
