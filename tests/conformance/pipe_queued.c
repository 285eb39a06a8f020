/* A pipe with its buffer full (64 KiB queued) moves with every byte. */
#include "conf.h"

int main(void) {
  conf_init();
  int p[2];
  CONF_CHECK(pipe2(p, O_NONBLOCK) == 0, "pipe: %s", strerror(errno));
  unsigned char buf[4096];
  size_t sent = 0;
  for (;;) {
    conf_fill(buf, sizeof buf, 1, sent);
    ssize_t n = write(p[1], buf, sizeof buf);
    if (n <= 0) break;
    sent += (size_t)n;
  }
  CONF_CHECK(sent >= 4096, "nothing queued");
  conf_ready();
  conf_wait(NULL);
  size_t got = 0;
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) CONF_CHECK(buf[i] == conf_byte(1, got + (size_t)i), "byte %zu differs", got + (size_t)i);
    got += (size_t)n;
  }
  CONF_CHECK(got == sent, "%zu of %zu bytes", got, sent);
  conf_pass();
}
