/* Fds of the memory devices: /dev/null, /dev/zero, /dev/full, /dev/urandom,
 * each still the same device and behaving as it, and a MAP_PRIVATE mapping of
 * /dev/zero with content (partly written, partly untouched zeros). */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "conf.h"

#define SZ (1u << 20)

static int openDev(const char* path, int flags) {
  int fd = open(path, flags);
  CONF_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  return fd;
}

static void isDev(int fd, const char* name, unsigned minor) {
  struct stat st;
  CONF_CHECK(fstat(fd, &st) == 0, "fstat %s: %s", name, strerror(errno));
  CONF_CHECK(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, minor), "%s fd is now %u:%u (mode %o), not 1:%u", name,
             major(st.st_rdev), minor(st.st_rdev), st.st_mode, minor);
}

int main(void) {
  conf_init();
  int null = openDev("/dev/null", O_RDWR), zero = openDev("/dev/zero", O_RDONLY);
  int full = openDev("/dev/full", O_WRONLY), urandom = openDev("/dev/urandom", O_RDONLY);
  int mz = openDev("/dev/zero", O_RDWR);
  unsigned char* map = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE, mz, 0);
  CONF_CHECK(map != MAP_FAILED && close(mz) == 0, "mmap /dev/zero: %s", strerror(errno));
  conf_fill(map, SZ / 2, 51, 0);
  map[SZ - 1] = 0x5a;
  conf_ready();
  conf_wait(NULL);
  isDev(null, "/dev/null", 3);
  isDev(zero, "/dev/zero", 5);
  isDev(full, "/dev/full", 7);
  isDev(urandom, "/dev/urandom", 9);
  unsigned char buf[4096];
  CONF_CHECK(write(null, buf, sizeof buf) == (ssize_t)sizeof buf, "/dev/null write: %s", strerror(errno));
  CONF_CHECK(read(null, buf, sizeof buf) == 0, "/dev/null read is not at end of file");
  memset(buf, 0xff, sizeof buf);
  CONF_CHECK(read(zero, buf, sizeof buf) == (ssize_t)sizeof buf, "/dev/zero read: %s", strerror(errno));
  for (size_t i = 0; i < sizeof buf; ++i) CONF_CHECK(buf[i] == 0, "/dev/zero gave a non-zero byte");
  CONF_CHECK(write(full, buf, 1) == -1 && errno == ENOSPC, "/dev/full write did not fail with ENOSPC");
  memset(buf, 0, sizeof buf);
  CONF_CHECK(read(urandom, buf, 256) == 256, "/dev/urandom read: %s", strerror(errno));
  int nonzero = 0;
  for (int i = 0; i < 256; ++i) nonzero += buf[i] != 0;
  CONF_CHECK(nonzero > 200, "/dev/urandom gave %d of 256 non-zero bytes", nonzero);
  for (size_t i = 0; i < SZ; ++i) {
    const unsigned char want = i < SZ / 2 ? conf_byte(51, i) : i == SZ - 1 ? 0x5a : 0;
    CONF_CHECK(map[i] == want, "/dev/zero mapping: byte %zu is %#x, not %#x", i, map[i], want);
  }
  map[SZ / 2 + 8192] = 1;
  CONF_CHECK(map[SZ / 2 + 8192] == 1 && map[SZ / 2 + 4096] == 0, "/dev/zero mapping not writable");
  conf_pass();
}
