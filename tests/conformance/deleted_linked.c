/* A file of /tmp with two names, open through the first, which is then
 * unlinked: the file lives on under the second name (one link left). CRIU
 * links such a file back into the tree for the dump (--link-remap,
 * link_remap.N), removes that name again when a dump that leaves the tasks
 * running ends, and its restore opens that name: lxmig refuses the move
 * (container/unmovable.cc). Were it carried: content and offset kept, the
 * second name with its content, the first gone. */
#include <sys/stat.h>

#include "conf.h"

#define SZ (96u << 10)
#define POS 4321

static unsigned char buf[SZ];

int main(void) {
  conf_init();
  int fd = open("/tmp/conf-linked-a", O_CREAT | O_RDWR | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0, "open: %s", strerror(errno));
  conf_fill(buf, SZ, 31, 0);
  CONF_CHECK(write(fd, buf, SZ) == (ssize_t)SZ, "write: %s", strerror(errno));
  CONF_CHECK(lseek(fd, POS, SEEK_SET) == POS, "lseek: %s", strerror(errno));
  CONF_CHECK(link("/tmp/conf-linked-a", "/tmp/conf-linked-b") == 0, "link: %s", strerror(errno));
  CONF_CHECK(unlink("/tmp/conf-linked-a") == 0, "unlink: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct stat st;
  CONF_CHECK(fstat(fd, &st) == 0 && st.st_size == SZ, "open file: size %lld", (long long)st.st_size);
  const off_t pos = lseek(fd, 0, SEEK_CUR);
  CONF_CHECK(pos == POS, "open file: offset %lld, not %d", (long long)pos, POS);
  memset(buf, 0, SZ);
  CONF_CHECK(pread(fd, buf, SZ, 0) == (ssize_t)SZ, "pread: %s", strerror(errno));
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(buf[i] == conf_byte(31, i), "byte %zu differs", i);
  int other = open("/tmp/conf-linked-b", O_RDONLY);
  CONF_CHECK(other >= 0, "the second name is gone: %s", strerror(errno));
  memset(buf, 0, SZ);
  CONF_CHECK(pread(other, buf, SZ, 0) == (ssize_t)SZ, "pread second name: %s", strerror(errno));
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(buf[i] == conf_byte(31, i), "second name: byte %zu differs", i);
  CONF_CHECK(access("/tmp/conf-linked-a", F_OK) != 0, "the unlinked name reappeared in /tmp");
  conf_pass();
}
