/* Offsets and status flags of regular-file fds: a dup()ed pair shares one
 * offset, a second open() of the file has its own, an O_APPEND fd appends,
 * pread/pwrite leave offsets alone. */
#include <sys/stat.h>

#include "conf.h"

#define SZ 65536
#define F "/tmp/conf-offsets"

static off_t at(int fd) { return lseek(fd, 0, SEEK_CUR); }

int main(void) {
  conf_init();
  static unsigned char buf[SZ];
  conf_fill(buf, SZ, 41, 0);
  int a = open(F, O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(a >= 0 && write(a, buf, SZ) == SZ, "write: %s", strerror(errno));
  int b = dup(a), c = open(F, O_RDONLY | O_NONBLOCK), d = open(F, O_WRONLY | O_APPEND);
  CONF_CHECK(b >= 0 && c >= 0 && d >= 0, "open: %s", strerror(errno));
  CONF_CHECK(lseek(a, 1000, SEEK_SET) == 1000 && lseek(c, 5000, SEEK_SET) == 5000, "lseek: %s", strerror(errno));
  CONF_CHECK(pwrite(a, "PWRITE", 6, 20000) == 6 && pread(c, buf, 6, 30000) == 6, "pwrite/pread: %s", strerror(errno));
  CONF_CHECK(write(d, "APPENDED", 8) == 8 && at(d) == SZ + 8, "append: %s", strerror(errno));
  CONF_CHECK(at(a) == 1000 && at(b) == 1000 && at(c) == 5000, "offsets wrong before the move");
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(at(a) == 1000 && at(b) == 1000, "dup()ed offsets %lld/%lld, not 1000", (long long)at(a), (long long)at(b));
  CONF_CHECK(at(c) == 5000, "second open's offset %lld, not 5000", (long long)at(c));
  CONF_CHECK(at(d) == SZ + 8, "O_APPEND fd's offset %lld, not %d", (long long)at(d), SZ + 8);
  const int fa = fcntl(a, F_GETFL), fb = fcntl(b, F_GETFL), fc = fcntl(c, F_GETFL), fd = fcntl(d, F_GETFL);
  CONF_CHECK((fa & O_ACCMODE) == O_RDWR && fb == fa && !(fa & (O_APPEND | O_NONBLOCK)), "flags %#o/%#o", fa, fb);
  CONF_CHECK((fc & O_ACCMODE) == O_RDONLY && (fc & O_NONBLOCK) && !(fc & O_APPEND), "read fd's flags %#o", fc);
  CONF_CHECK((fd & O_ACCMODE) == O_WRONLY && (fd & O_APPEND), "append fd's flags %#o", fd);
  /* The dup()ed pair still shares one offset, the other open does not. */
  CONF_CHECK(lseek(b, 2000, SEEK_SET) == 2000 && at(a) == 2000, "dup()ed fds no longer share an offset");
  CONF_CHECK(at(c) == 5000, "independent opens share an offset after the move");
  unsigned char x[8];
  CONF_CHECK(read(c, x, 4) == 4 && at(c) == 5004 && at(a) == 2000, "read moved the wrong offset");
  for (int i = 0; i < 4; ++i) CONF_CHECK(x[i] == conf_byte(41, 5000 + (size_t)i), "byte %d at 5000 differs", 5000 + i);
  CONF_CHECK(pread(b, x, 6, 20000) == 6 && memcmp(x, "PWRITE", 6) == 0 && at(b) == 2000,
             "bytes written by pwrite lost");
  CONF_CHECK(lseek(d, 0, SEEK_SET) == 0 && write(d, "TAIL", 4) == 4, "append: %s", strerror(errno));
  struct stat st;
  CONF_CHECK(fstat(a, &st) == 0 && st.st_size == SZ + 12, "size %lld after an append", (long long)st.st_size);
  CONF_CHECK(pread(a, x, 8, SZ + 4) == 8 && memcmp(x, "NDEDTAIL", 8) == 0, "O_APPEND fd no longer appends");
  conf_pass();
}
