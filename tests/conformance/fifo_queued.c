/* A FIFO of the container's own /tmp, opened both ways, 16 KiB queued. */
#include "conf.h"

int main(void) {
  conf_init();
  int r, w;
  conf_fifo("/tmp/conf.fifo", &r, &w);
  unsigned char buf[16384];
  conf_fill(buf, sizeof buf, 2, 0);
  CONF_CHECK(write(w, buf, sizeof buf) == (ssize_t)sizeof buf, "write: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  memset(buf, 0, sizeof buf);
  CONF_CHECK(read(r, buf, sizeof buf) == (ssize_t)sizeof buf, "read: %s", strerror(errno));
  for (size_t i = 0; i < sizeof buf; ++i) CONF_CHECK(buf[i] == conf_byte(2, i), "byte %zu differs", i);
  conf_pass();
}
