/* fanotify (FAN_CLASS_NOTIF) with a mark on a directory of the container for
 * FAN_MODIFY|FAN_CLOSE_WRITE on its files: an event queued unread before the
 * move, then a new one after it; the mark's mask kept (fdinfo). */
#include <sys/fanotify.h>
#include <sys/stat.h>

#include "conf.h"

#define DIR "/tmp/conf-fan"
#define MASK (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD)

static void touch(const char* path) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0, "%s: %s", path, strerror(errno));
}

/* The "fanotify ... mask:" of the directory's mark in fdinfo, or -1. */
static long mark_mask(int fan) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fan);
  FILE* f = fopen(path, "r");
  long m = -1;
  while (f && fgets(line, sizeof line, f)) {
    const char* p = strncmp(line, "fanotify ino:", 13) == 0 ? strstr(line, " mask:") : NULL;
    if (p) m = strtol(p + 6, NULL, 16);
  }
  if (f) fclose(f);
  return m;
}

/* Reads the queued events: the union of the masks reported for `name`, -1 if none. */
static long events_for(int fan, const char* name, pid_t* pid) {
  char buf[4096], want[128], link[256], fdpath[64];
  snprintf(want, sizeof want, DIR "/%s", name);
  long mask = -1;
  ssize_t n;
  while ((n = read(fan, buf, sizeof buf)) > 0) {
    for (struct fanotify_event_metadata* m = (void*)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      CONF_CHECK(m->vers == FANOTIFY_METADATA_VERSION, "metadata version %d", m->vers);
      if (m->fd < 0) continue;
      snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", m->fd);
      ssize_t l = readlink(fdpath, link, sizeof link - 1);
      link[l > 0 ? l : 0] = 0;
      if (strcmp(link, want) == 0) mask = (mask < 0 ? 0 : mask) | (long)m->mask, *pid = m->pid;
      close(m->fd);
    }
  }
  CONF_CHECK(n < 0 && errno == EAGAIN, "read: %s", n < 0 ? strerror(errno) : "end of file");
  return mask;
}

int main(void) {
  conf_init();
  mkdir(DIR, 0700);
  unlink(DIR "/before");
  unlink(DIR "/after");
  int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
  CONF_CHECK(fan >= 0, "fanotify_init: %s", strerror(errno));
  CONF_CHECK(fanotify_mark(fan, FAN_MARK_ADD, MASK, AT_FDCWD, DIR) == 0, "fanotify_mark: %s", strerror(errno));
  const long mm = mark_mask(fan);
  CONF_CHECK(mm > 0, "no mark in fdinfo");
  touch(DIR "/before");
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(mark_mask(fan) == mm, "mark mask %#lx, was %#lx", mark_mask(fan), mm);
  pid_t pid = 0;
  long m = events_for(fan, "before", &pid);
  CONF_CHECK(m >= 0, "the event queued before the move is lost");
  CONF_CHECK(m == (FAN_MODIFY | FAN_CLOSE_WRITE), "the queued event's mask is %#lx", m);
  touch(DIR "/after");
  usleep(20000);
  m = events_for(fan, "after", &pid);
  CONF_CHECK(m >= 0, "no event for a file written after the move");
  CONF_CHECK(m == (FAN_MODIFY | FAN_CLOSE_WRITE) && pid == getpid(), "new event: mask %#lx, pid %d", m, (int)pid);
  conf_pass();
}
