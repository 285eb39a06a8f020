/* Directory fds: an O_DIRECTORY fd part-way through getdents (the rest comes
 * after, nothing twice or missing), an O_PATH fd, openat() relative to a
 * directory fd, and a cwd whose directory is also open as an fd. */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "conf.h"

#define D "/tmp/conf-dir"
#define N 20

static int seen[N + 3]; /* f00..f19, ".", "..", "sub" */

/* Reads one getdents64 batch into seen[]; returns the entry count. */
static int readBatch(int fd, size_t len) {
  char buf[4096];
  long n = syscall(SYS_getdents64, fd, buf, len);
  CONF_CHECK(n >= 0, "getdents64: %s", strerror(errno));
  int count = 0;
  for (long o = 0; o < n; ++count) {
    struct dirent64* e = (struct dirent64*)(buf + o);
    int k = strcmp(e->d_name, ".") == 0     ? N
            : strcmp(e->d_name, "..") == 0  ? N + 1
            : strcmp(e->d_name, "sub") == 0 ? N + 2
            : e->d_name[0] == 'f'           ? atoi(e->d_name + 1)
                                            : -1;
    CONF_CHECK(k >= 0 && k < N + 3, "unexpected entry %s", e->d_name);
    CONF_CHECK(++seen[k] == 1, "entry %s listed twice", e->d_name);
    o += e->d_reclen;
  }
  return count;
}

int main(void) {
  conf_init();
  CONF_CHECK(mkdir(D, 0700) == 0 && mkdir(D "/sub", 0700) == 0, "mkdir: %s", strerror(errno));
  for (int i = 0; i < N; ++i) {
    char name[64];
    unsigned char data[N];
    snprintf(name, sizeof name, D "/f%02d", i);
    conf_fill(data, (size_t)i + 1, 61, (size_t)i * 100);
    int f = open(name, O_CREAT | O_WRONLY, 0600);
    CONF_CHECK(f >= 0 && write(f, data, (size_t)i + 1) == i + 1 && close(f) == 0, "%s: %s", name, strerror(errno));
  }
  int d = open(D, O_RDONLY | O_DIRECTORY);
  CONF_CHECK(d >= 0, "open dir: %s", strerror(errno));
  const int first = readBatch(d, 120);
  const off_t pos = lseek(d, 0, SEEK_CUR);
  CONF_CHECK(first > 0 && first < N && pos > 0, "first batch: %d entries", first);
  int path = open(D "/f07", O_PATH), subPath = open(D "/sub", O_PATH | O_DIRECTORY);
  CONF_CHECK(path >= 0 && subPath >= 0, "O_PATH: %s", strerror(errno));
  CONF_CHECK(chdir(D "/sub") == 0, "chdir: %s", strerror(errno));
  int cwd = open(".", O_RDONLY | O_DIRECTORY);
  CONF_CHECK(cwd >= 0, "open .: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  const off_t now = lseek(d, 0, SEEK_CUR);
  CONF_CHECK(now == pos, "directory position %lld, not %lld", (long long)now, (long long)pos);
  int rest = 0, n;
  while ((n = readBatch(d, 4096)) > 0) rest += n;
  CONF_CHECK(first + rest == N + 3, "%d entries before and %d after the move, not %d in all", first, rest, N + 3);
  CONF_CHECK(fcntl(path, F_GETFL) & O_PATH, "O_PATH fd lost O_PATH");
  char c, link[256] = {0};
  CONF_CHECK(read(path, &c, 1) == -1 && errno == EBADF, "O_PATH fd is readable");
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", path);
  CONF_CHECK(readlink(proc, link, sizeof link - 1) > 0 && strcmp(link, D "/f07") == 0, "O_PATH fd names %s", link);
  struct stat st;
  CONF_CHECK(fstat(path, &st) == 0 && st.st_size == 8, "O_PATH fd: size %lld", (long long)st.st_size);
  int f = openat(d, "f12", O_RDONLY);
  unsigned char data[64];
  CONF_CHECK(f >= 0 && read(f, data, sizeof data) == 13, "openat(dirfd, f12): %s", strerror(errno));
  for (size_t i = 0; i < 13; ++i)
    CONF_CHECK(data[i] == conf_byte(61, 1200 + i), "f12 through openat: byte %zu differs", i);
  f = openat(subPath, "made-after", O_CREAT | O_WRONLY, 0600);
  CONF_CHECK(f >= 0, "openat(O_PATH dirfd): %s", strerror(errno));
  CONF_CHECK(access(D "/sub/made-after", F_OK) == 0, "openat(O_PATH dirfd) created its file elsewhere");
  CONF_CHECK(getcwd(link, sizeof link) && strcmp(link, D "/sub") == 0, "cwd %s", link);
  struct stat a, b;
  CONF_CHECK(fstat(cwd, &a) == 0 && stat(".", &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino,
             "the open cwd fd and the cwd are different directories");
  CONF_CHECK(faccessat(cwd, "made-after", F_OK, 0) == 0, "cwd fd does not see the new file");
  conf_pass();
}
