/* Files of /tmp unlinked while open: one written (200 KiB) with its offset
 * mid-file, one mapped MAP_SHARED and modified through the mapping. Both keep
 * content, size and offset, stay shared with their mapping and stay unlinked. */
#include <sys/mman.h>
#include <sys/stat.h>

#include "conf.h"

#define SZ (200u << 10)
#define MSZ (64u << 10)
#define POS 12345

static unsigned char buf[SZ];

int main(void) {
  conf_init();
  int fd = open("/tmp/conf-deleted", O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0, "open: %s", strerror(errno));
  conf_fill(buf, SZ, 21, 0);
  CONF_CHECK(write(fd, buf, SZ) == (ssize_t)SZ, "write: %s", strerror(errno));
  CONF_CHECK(lseek(fd, POS, SEEK_SET) == POS, "lseek: %s", strerror(errno));
  CONF_CHECK(unlink("/tmp/conf-deleted") == 0, "unlink: %s", strerror(errno));
  int mfd = open("/tmp/conf-deleted-map", O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(mfd >= 0 && ftruncate(mfd, MSZ) == 0, "mapped file: %s", strerror(errno));
  unsigned char* map = mmap(NULL, MSZ, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  CONF_CHECK(map != MAP_FAILED, "mmap: %s", strerror(errno));
  CONF_CHECK(unlink("/tmp/conf-deleted-map") == 0, "unlink: %s", strerror(errno));
  conf_fill(map, MSZ, 22, 0);
  conf_ready();
  conf_wait(NULL);
  struct stat st;
  CONF_CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
  CONF_CHECK(st.st_size == SZ && st.st_nlink == 0, "deleted file: size %lld, %lu links", (long long)st.st_size,
             (unsigned long)st.st_nlink);
  const off_t pos = lseek(fd, 0, SEEK_CUR);
  CONF_CHECK(pos == POS, "deleted file: offset %lld, not %d", (long long)pos, POS);
  memset(buf, 0, SZ);
  CONF_CHECK(read(fd, buf, SZ) == (ssize_t)(SZ - POS), "read from the offset: %s", strerror(errno));
  for (size_t i = 0; i < SZ - POS; ++i) CONF_CHECK(buf[i] == conf_byte(21, POS + i), "byte %zu differs", POS + i);
  CONF_CHECK(pread(fd, buf, SZ, 0) == (ssize_t)SZ, "pread: %s", strerror(errno));
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(buf[i] == conf_byte(21, i), "byte %zu differs", i);
  CONF_CHECK(fstat(mfd, &st) == 0 && st.st_size == MSZ && st.st_nlink == 0, "mapped deleted file: size %lld, %lu links",
             (long long)st.st_size, (unsigned long)st.st_nlink);
  CONF_CHECK(pread(mfd, buf, MSZ, 0) == (ssize_t)MSZ, "pread mapped: %s", strerror(errno));
  for (size_t i = 0; i < MSZ; ++i) {
    CONF_CHECK(map[i] == conf_byte(22, i), "mapping byte %zu differs", i);
    CONF_CHECK(buf[i] == conf_byte(22, i), "mapped file byte %zu differs (writes through the mapping lost)", i);
  }
  map[100] ^= 0xff;
  CONF_CHECK(pread(mfd, buf, 1, 100) == 1 && buf[0] == map[100], "mapping no longer shared with the deleted file");
  CONF_CHECK(access("/tmp/conf-deleted", F_OK) != 0 && access("/tmp/conf-deleted-map", F_OK) != 0,
             "a deleted file reappeared in /tmp");
  conf_pass();
}
