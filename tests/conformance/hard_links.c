/* Files of /tmp with several names (hard links): one of three names, in two
 * directories, open through the first; a fourth name added and a name of a
 * second file broken off (a new file renamed over it) while the program
 * waits, so before or during the move. Each file arrives as one file with
 * all its names and its content; the open fd is that file; a name broken
 * off is a file of its own. */
#include <sys/stat.h>

#include "conf.h"

#define SZ (64u << 10)

static unsigned char buf[SZ];
static int ticks;

static void write_file(const char* path, unsigned seed) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  CONF_CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
  conf_fill(buf, SZ, seed, 0);
  CONF_CHECK(write(fd, buf, SZ) == (ssize_t)SZ, "write %s: %s", path, strerror(errno));
  close(fd);
}

static void check_content(const char* path, unsigned seed) {
  int fd = open(path, O_RDONLY);
  CONF_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  CONF_CHECK(read(fd, buf, SZ) == (ssize_t)SZ, "read %s: %s", path, strerror(errno));
  close(fd);
  for (size_t i = 0; i < SZ; ++i) CONF_CHECK(buf[i] == conf_byte(seed, i), "%s: byte %zu differs", path, i);
}

static struct stat stat_of(const char* path) {
  struct stat st;
  CONF_CHECK(lstat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
  return st;
}

/* About 300 ms after it was ready: a name added, another broken off. */
static void tick(void) {
  if (++ticks != 30) return;
  CONF_CHECK(link("/tmp/conf-hl-a", "/tmp/conf-hl-g") == 0, "link g: %s", strerror(errno));
  write_file("/tmp/conf-hl-f.new", 43);
  CONF_CHECK(rename("/tmp/conf-hl-f.new", "/tmp/conf-hl-f") == 0, "rename over f: %s", strerror(errno));
}

int main(void) {
  conf_init();
  CONF_CHECK(mkdir("/tmp/conf-hl-dir", 0755) == 0 || errno == EEXIST, "mkdir: %s", strerror(errno));
  write_file("/tmp/conf-hl-a", 41);
  CONF_CHECK(link("/tmp/conf-hl-a", "/tmp/conf-hl-b") == 0, "link b: %s", strerror(errno));
  CONF_CHECK(link("/tmp/conf-hl-a", "/tmp/conf-hl-dir/c") == 0, "link c: %s", strerror(errno));
  write_file("/tmp/conf-hl-e", 42);
  CONF_CHECK(link("/tmp/conf-hl-e", "/tmp/conf-hl-f") == 0, "link f: %s", strerror(errno));
  int fd = open("/tmp/conf-hl-a", O_RDWR);
  CONF_CHECK(fd >= 0, "open a: %s", strerror(errno));
  conf_ready();
  conf_wait(tick);
  while (ticks < 30) tick(); /* told to check sooner (no move) */

  const struct stat a = stat_of("/tmp/conf-hl-a");
  const char* others[] = {"/tmp/conf-hl-b", "/tmp/conf-hl-dir/c", "/tmp/conf-hl-g"};
  for (size_t i = 0; i < 3; ++i) {
    const struct stat o = stat_of(others[i]);
    CONF_CHECK(o.st_dev == a.st_dev && o.st_ino == a.st_ino, "%s is no longer a name of /tmp/conf-hl-a", others[i]);
  }
  CONF_CHECK(a.st_nlink == 4, "/tmp/conf-hl-a has %lu names, not 4", (unsigned long)a.st_nlink);
  check_content("/tmp/conf-hl-b", 41);
  struct stat open_st;
  CONF_CHECK(fstat(fd, &open_st) == 0, "fstat: %s", strerror(errno));
  CONF_CHECK(open_st.st_ino == a.st_ino, "the open fd is another file than its names");
  unsigned char x = 0x5a, y = 0;
  CONF_CHECK(pwrite(fd, &x, 1, 100) == 1, "pwrite: %s", strerror(errno));
  int other = open("/tmp/conf-hl-dir/c", O_RDONLY);
  CONF_CHECK(other >= 0 && pread(other, &y, 1, 100) == 1 && y == x, "a write through the fd not seen through c");

  const struct stat e = stat_of("/tmp/conf-hl-e"), f = stat_of("/tmp/conf-hl-f");
  CONF_CHECK(e.st_ino != f.st_ino, "/tmp/conf-hl-f is still a name of /tmp/conf-hl-e");
  CONF_CHECK(e.st_nlink == 1 && f.st_nlink == 1, "e and f have %lu and %lu names, not 1", (unsigned long)e.st_nlink,
             (unsigned long)f.st_nlink);
  check_content("/tmp/conf-hl-e", 42);
  check_content("/tmp/conf-hl-f", 43);
  conf_pass();
}
