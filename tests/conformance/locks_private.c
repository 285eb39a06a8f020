/* flock, POSIX and OFD locks on files of the container's own /tmp: after
 * the move another process still cannot take any of them. */
#include <sys/file.h>
#include <sys/wait.h>

#include "conf.h"

static int lockFile(const char* path) {
  int fd = open(path, O_CREAT | O_RDWR, 0600);
  CONF_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  return fd;
}

int main(void) {
  conf_init();
  int a = lockFile("/tmp/conf-flock"), b = lockFile("/tmp/conf-posix"), c = lockFile("/tmp/conf-ofd");
  CONF_CHECK(flock(a, LOCK_EX) == 0, "flock: %s", strerror(errno));
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
  CONF_CHECK(fcntl(b, F_SETLK, &fl) == 0, "posix lock: %s", strerror(errno));
  struct flock ofd = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
  CONF_CHECK(fcntl(c, F_OFD_SETLK, &ofd) == 0, "ofd lock: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  pid_t child = fork();
  if (child == 0) {
    int x = open("/tmp/conf-flock", O_RDWR), y = open("/tmp/conf-posix", O_RDWR), z = open("/tmp/conf-ofd", O_RDWR);
    struct flock t = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
    struct flock u = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1};
    int free = (flock(x, LOCK_EX | LOCK_NB) == 0) | (fcntl(y, F_SETLK, &t) == 0) << 1 | (fcntl(z, F_OFD_SETLK, &u) == 0) << 2;
    _exit(free);
  }
  int st = 0;
  waitpid(child, &st, 0);
  CONF_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "locks lost (mask %d: 1 flock, 2 posix, 4 ofd)", WEXITSTATUS(st));
  conf_pass();
}
