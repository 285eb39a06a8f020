/* One file of /tmp mapped twice: MAP_PRIVATE with some pages written (copies
 * that differ from the file) and MAP_SHARED with other pages written (the
 * file changed). Pages by index mod 4: 0 private only, 1 shared only,
 * 2 untouched, 3 private first, then shared. Both views and the file are kept. */
#include <sys/mman.h>

#include "conf.h"

#define PG 4096
#define PAGES 256
#define SZ (PAGES * PG)

/* The streams (every byte differs between them) and which one byte i shows in each view. */
#define ORIG 0x10000u
#define PRIV 0x20000u
#define SHARED 0x30000u
static unsigned privSeed(size_t i) {
  return (i / PG) % 4 == 0 || (i / PG) % 4 == 3 ? PRIV : (i / PG) % 4 == 1 ? SHARED : ORIG;
}
static unsigned fileSeed(size_t i) { return (i / PG) % 2 ? SHARED : ORIG; }

int main(void) {
  conf_init();
  static unsigned char buf[SZ];
  conf_fill(buf, SZ, ORIG, 0);
  int fd = open("/tmp/conf-mmap-file", O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0 && write(fd, buf, SZ) == SZ, "file: %s", strerror(errno));
  unsigned char* priv = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  unsigned char* shared = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CONF_CHECK(priv != MAP_FAILED && shared != MAP_FAILED, "mmap: %s", strerror(errno));
  for (size_t p = 0; p < PAGES; ++p) {
    if (p % 4 == 0 || p % 4 == 3) conf_fill(priv + p * PG, PG, PRIV, p * PG);
  }
  for (size_t p = 0; p < PAGES; ++p) {
    if (p % 4 == 1 || p % 4 == 3) conf_fill(shared + p * PG, PG, SHARED, p * PG);
  }
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(priv[i] == conf_byte(privSeed(i), i), "setup: private view differs");
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(pread(fd, buf, SZ, 0) == SZ, "pread: %s", strerror(errno));
  for (size_t i = 0; i < SZ; ++i) {
    const char* kind[] = {"copied", "shared-written", "untouched", "copied, then shared-written"};
    CONF_CHECK(priv[i] == conf_byte(privSeed(i), i), "private view: byte %zu differs (page %s)", i, kind[(i / PG) % 4]);
    CONF_CHECK(shared[i] == conf_byte(fileSeed(i), i), "shared view: byte %zu differs (page %s)", i,
               kind[(i / PG) % 4]);
    CONF_CHECK(buf[i] == conf_byte(fileSeed(i), i), "file: byte %zu differs (page %s)", i, kind[(i / PG) % 4]);
  }
  /* Still private: a write there does not reach the file; still shared: one there does. */
  priv[0] ^= 0xff;
  shared[PG] ^= 0xff;
  unsigned char x[2];
  CONF_CHECK(pread(fd, x, 1, 0) == 1 && x[0] == conf_byte(ORIG, 0), "private mapping writes reach the file");
  CONF_CHECK(pread(fd, x, 1, PG) == 1 && x[0] == shared[PG], "shared mapping writes no longer reach the file");
  conf_pass();
}
