/* A FIFO in a bind (the runner's /results: on the test bed's one kernel
 * the target sees the very pipe the frozen source holds), opened both ways
 * with 16 KiB queued: after the move the bytes are there exactly once (the
 * target leaves them out of CRIU's restore, which would queue them a
 * second time or fail on a full pipe), and new bytes pass. */
#include "conf.h"

int main(void) {
  conf_init();
  char path[300];
  int r, w;
  conf_results_path(path, sizeof path, ".fifo");
  conf_fifo(path, &r, &w);
  unsigned char buf[16384];
  conf_fill(buf, sizeof buf, 5, 0);
  CONF_CHECK(write(w, buf, sizeof buf) == (ssize_t)sizeof buf, "write: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  memset(buf, 0, sizeof buf);
  CONF_CHECK(read(r, buf, sizeof buf) == (ssize_t)sizeof buf, "read: %s", strerror(errno));
  for (size_t i = 0; i < sizeof buf; ++i) CONF_CHECK(buf[i] == conf_byte(5, i), "byte %zu differs", i);
  CONF_CHECK(read(r, buf, sizeof buf) < 0 && errno == EAGAIN, "bytes queued twice");
  CONF_CHECK(write(w, "after", 5) == 5 && read(r, buf, sizeof buf) == 5 && memcmp(buf, "after", 5) == 0,
             "the FIFO carries nothing after the move");
  unlink(path);
  conf_pass();
}
