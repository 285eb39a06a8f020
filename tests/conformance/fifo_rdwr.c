/* FIFOs of /tmp in the unusual open modes: one opened O_RDWR by a single fd
 * with 8 KiB queued, one with only a reader (O_RDONLY|O_NONBLOCK) and no
 * writer. Both behave the same after the move. */
#include <poll.h>
#include <sys/stat.h>

#include "conf.h"

#define RW "/tmp/conf-fifo-rdwr"
#define RO "/tmp/conf-fifo-reader"
#define SZ 8192

static int readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 1000) == 1 && (p.revents & POLLIN);
}

int main(void) {
  conf_init();
  CONF_CHECK(mkfifo(RW, 0600) == 0 && mkfifo(RO, 0600) == 0, "mkfifo: %s", strerror(errno));
  int rw = open(RW, O_RDWR), r = open(RO, O_RDONLY | O_NONBLOCK);
  CONF_CHECK(rw >= 0 && r >= 0, "open: %s", strerror(errno));
  unsigned char buf[SZ];
  conf_fill(buf, SZ, 71, 0);
  CONF_CHECK(write(rw, buf, SZ) == SZ, "write: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  const int frw = fcntl(rw, F_GETFL), fr = fcntl(r, F_GETFL);
  CONF_CHECK((frw & O_ACCMODE) == O_RDWR && !(frw & O_NONBLOCK), "O_RDWR FIFO fd's flags %#o", frw);
  CONF_CHECK((fr & O_ACCMODE) == O_RDONLY && (fr & O_NONBLOCK), "reader FIFO fd's flags %#o", fr);
  memset(buf, 0, SZ);
  ssize_t n = readable(rw) ? read(rw, buf, SZ) : 0;
  CONF_CHECK(n == SZ, "O_RDWR FIFO: %zd of the %d bytes queued", n, SZ);
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(buf[i] == conf_byte(71, i), "O_RDWR FIFO: byte %zu differs", i);
  CONF_CHECK(write(rw, "again", 5) == 5 && readable(rw) && read(rw, buf, SZ) == 5, "O_RDWR FIFO: no loop-back");
  int w = open(RW, O_WRONLY | O_NONBLOCK);
  CONF_CHECK(w >= 0, "O_RDWR FIFO has no reader after the move: %s", strerror(errno));
  CONF_CHECK(write(w, "xyz", 3) == 3 && readable(rw) && read(rw, buf, SZ) == 3,
             "O_RDWR FIFO: another writer's data lost");
  /* The reader alone: end of file (no writer), a writer may open, its data arrives. */
  n = read(r, buf, SZ);
  CONF_CHECK(n == 0, "writerless FIFO read gives %zd (%s), not end of file", n, n < 0 ? strerror(errno) : "data");
  w = open(RO, O_WRONLY | O_NONBLOCK);
  CONF_CHECK(w >= 0, "writerless FIFO lost its reader: %s", strerror(errno));
  n = read(r, buf, SZ);
  CONF_CHECK(n == -1 && errno == EAGAIN, "reader with an idle writer: %zd, not EAGAIN", n);
  CONF_CHECK(write(w, "hello", 5) == 5 && readable(r) && read(r, buf, SZ) == 5 && memcmp(buf, "hello", 5) == 0,
             "writerless FIFO: the reader does not get a new writer's data");
  conf_pass();
}
