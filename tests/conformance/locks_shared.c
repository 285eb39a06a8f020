/* A lock on a file in a bind (the runner's /results): the target would see
 * the same file, so the migration is refused, naming the lock. */
#include <sys/file.h>

#include "conf.h"

int main(void) {
  conf_init();
  int fd = open("/results/locks_shared.lock", O_CREAT | O_RDWR, 0600);
  CONF_CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0, "flock: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0, "lost the lock");
  conf_pass();
}
