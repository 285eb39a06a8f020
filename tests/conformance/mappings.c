/* Mappings of every kind: private anonymous with content, shared anonymous
 * written by a child, a shared file mapping, a read-only (mprotect) region,
 * a region dropped with madvise(DONTNEED) (zeros). */
#include <sys/mman.h>
#include <sys/wait.h>

#include "conf.h"

#define SZ (4u << 20)

int main(void) {
  conf_init();
  unsigned char* priv = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  unsigned char* shared = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int fd = open("/tmp/conf-mapped", O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0 && ftruncate(fd, SZ) == 0, "file: %s", strerror(errno));
  unsigned char* file = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CONF_CHECK(priv != MAP_FAILED && shared != MAP_FAILED && file != MAP_FAILED, "mmap: %s", strerror(errno));
  conf_fill(priv, SZ, 7, 0);
  conf_fill(file, SZ, 8, 0);
  memset(priv + SZ / 2, 0xaa, 65536);
  CONF_CHECK(madvise(priv + SZ / 2, 65536, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
  CONF_CHECK(mprotect(priv, 65536, PROT_READ) == 0, "mprotect: %s", strerror(errno));
  pid_t child = fork();
  if (child == 0) {
    conf_fill(shared, SZ, 9, 0);
    for (;;) pause();
  }
  usleep(200000);
  conf_ready();
  conf_wait(NULL);
  for (size_t i = 0; i < SZ; ++i) {
    const int dropped = i >= SZ / 2 && i < SZ / 2 + 65536;
    CONF_CHECK(priv[i] == (dropped ? 0 : conf_byte(7, i)), "private byte %zu differs", i);
    CONF_CHECK(shared[i] == conf_byte(9, i), "shared byte %zu differs (the child's writes)", i);
  }
  unsigned char buf[4096];
  for (size_t off = 0; off < SZ; off += sizeof buf) {
    CONF_CHECK(pread(fd, buf, sizeof buf, (off_t)off) == (ssize_t)sizeof buf, "pread: %s", strerror(errno));
    for (size_t i = 0; i < sizeof buf; ++i) CONF_CHECK(buf[i] == conf_byte(8, off + i), "file byte %zu differs", off + i);
  }
  CONF_CHECK(mprotect(priv, 65536, PROT_READ | PROT_WRITE) == 0, "mprotect back: %s", strerror(errno));
  kill(child, SIGKILL);
  conf_pass();
}
