/* A POSIX (fcntl F_SETLK) write lock on bytes 10..99 of a file in a bind (the
 * runner's /results): the target would see the same file, so the migration is
 * refused, naming the lock. Checked: another process's F_GETLK still sees it. */
#include <sys/wait.h>

#include "conf.h"

#define F "/results/locks_shared_posix.lock"

int main(void) {
  conf_init();
  int fd = open(F, O_CREAT | O_RDWR, 0600);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 90};
  CONF_CHECK(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0, "posix lock: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  pid_t child = fork();
  if (child == 0) {
    int x = open(F, O_RDWR);
    struct flock t = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (x < 0 || fcntl(x, F_GETLK, &t) != 0) _exit(1);
    if (t.l_type != F_WRLCK) _exit(2);
    if (t.l_start != 10 || t.l_len != 90) _exit(3);
    if (t.l_pid != getppid()) _exit(4);
    t = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 1};
    _exit(fcntl(x, F_SETLK, &t) == 0 ? 5 : 0);
  }
  int st = 0;
  waitpid(child, &st, 0);
  static const char* const why[] = {"",
                                    "F_GETLK failed",
                                    "lost the lock",
                                    "the lock's range changed",
                                    "the lock's owner is not this process",
                                    "another process could lock the range"};
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 6;
  CONF_CHECK(code == 0, "%s", code < 6 ? why[code] : "checker died");
  conf_pass();
}
