/* An inotify watch on a directory of the container: a file created after
 * the move is reported. */
#include <sys/inotify.h>
#include <sys/stat.h>

#include "conf.h"

int main(void) {
  conf_init();
  mkdir("/tmp/conf-watched", 0700);
  unlink("/tmp/conf-watched/new");
  int in = inotify_init1(IN_NONBLOCK);
  CONF_CHECK(in >= 0 && inotify_add_watch(in, "/tmp/conf-watched", IN_CREATE) >= 0, "inotify: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  int fd = open("/tmp/conf-watched/new", O_CREAT | O_WRONLY, 0600);
  CONF_CHECK(fd >= 0, "create: %s", strerror(errno));
  usleep(50000);
  char buf[4096];
  ssize_t n = read(in, buf, sizeof buf);
  CONF_CHECK(n >= (ssize_t)sizeof(struct inotify_event), "no event for the new file");
  struct inotify_event* e = (struct inotify_event*)buf;
  CONF_CHECK((e->mask & IN_CREATE) && e->len && strcmp(e->name, "new") == 0, "wrong event");
  conf_pass();
}
