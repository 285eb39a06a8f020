/* An inotify watch on a directory inside a bind mount (the runner's
 * /results, which the target sees as the same directory): a file created
 * there after the move is reported. CRIU finds a watched inode by its file
 * handle; one inside a bind is to be looked up below the bind's mount
 * point. */
#include <sys/inotify.h>
#include <sys/stat.h>

#include "conf.h"

int main(void) {
  conf_init();
  char dir[256], file[300];
  conf_results_path(dir, sizeof dir, ".watched");
  snprintf(file, sizeof file, "%s/new", dir);
  mkdir(dir, 0700);
  unlink(file);
  int in = inotify_init1(IN_NONBLOCK);
  CONF_CHECK(in >= 0 && inotify_add_watch(in, dir, IN_CREATE) >= 0, "inotify on %s: %s", dir, strerror(errno));
  conf_ready();
  conf_wait(NULL);
  int fd = open(file, O_CREAT | O_WRONLY, 0600);
  CONF_CHECK(fd >= 0, "create %s: %s", file, strerror(errno));
  usleep(50000);
  char buf[4096];
  ssize_t n = read(in, buf, sizeof buf);
  CONF_CHECK(n >= (ssize_t)sizeof(struct inotify_event), "no event for the new file in the bind");
  struct inotify_event* e = (struct inotify_event*)buf;
  CONF_CHECK((e->mask & IN_CREATE) && e->len && strcmp(e->name, "new") == 0, "wrong event");
  unlink(file);
  rmdir(dir);
  conf_pass();
}
