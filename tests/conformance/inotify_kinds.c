/* inotify: watches on a directory (IN_CREATE), on a file (IN_MODIFY, then
 * IN_CLOSE_WRITE added with IN_MASK_ADD) and a one-shot one (IN_ATTRIB, fired
 * and gone); events queued unread before the move, new ones after; the watch
 * descriptors and masks kept. */
#include <sys/inotify.h>
#include <sys/stat.h>

#include "conf.h"

#define DIR "/tmp/conf-ino"
#define FILE_ "/tmp/conf-ino-file"
#define ONE "/tmp/conf-ino-one"

static int in, wd_dir, wd_file, wd_one;

static void write_file(const char* path) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CONF_CHECK(fd >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0, "%s: %s", path, strerror(errno));
}

/* The queued events as "wd:mask:name " words. */
static void events(char* out, size_t size) {
  char buf[4096];
  ssize_t n;
  out[0] = 0;
  while ((n = read(in, buf, sizeof buf)) > 0)
    for (char* p = buf; p < buf + n; p += sizeof(struct inotify_event) + ((struct inotify_event*)p)->len) {
      const struct inotify_event* e = (void*)p;
      snprintf(out + strlen(out), size - strlen(out), "%d:%x:%s ", e->wd, e->mask, e->len ? e->name : "");
    }
}

static int cmp(const void* a, const void* b) { return strcmp(a, b); }

/* The watches in fdinfo as "wd:mask " words, sorted. */
static void watches(char* out, size_t size) {
  char path[64], line[256], w[8][32];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", in);
  FILE* f = fopen(path, "r");
  unsigned wd, mask;
  int n = 0;
  while (f && n < 8 && fgets(line, sizeof line, f)) {
    const char* m = strstr(line, " mask:");
    if (sscanf(line, "inotify wd:%x", &wd) == 1 && m && sscanf(m, " mask:%x", &mask) == 1)
      snprintf(w[n++], sizeof w[0], "%u:%x ", wd, mask);
  }
  if (f) fclose(f);
  qsort(w, (size_t)n, sizeof w[0], cmp);
  out[0] = 0;
  for (int i = 0; i < n; ++i) strncat(out, w[i], size - strlen(out) - 1);
}

int main(void) {
  conf_init();
  mkdir(DIR, 0700);
  unlink(DIR "/a");
  unlink(DIR "/b");
  write_file(FILE_);
  write_file(ONE);
  in = inotify_init1(IN_NONBLOCK);
  CONF_CHECK(in >= 0, "inotify_init1: %s", strerror(errno));
  wd_dir = inotify_add_watch(in, DIR, IN_CREATE);
  wd_file = inotify_add_watch(in, FILE_, IN_MODIFY);
  CONF_CHECK(inotify_add_watch(in, FILE_, IN_CLOSE_WRITE | IN_MASK_ADD) == wd_file, "IN_MASK_ADD: another wd");
  wd_one = inotify_add_watch(in, ONE, IN_ATTRIB | IN_ONESHOT);
  CONF_CHECK(wd_dir >= 0 && wd_file >= 0 && wd_one >= 0, "inotify_add_watch: %s", strerror(errno));
  write_file(DIR "/a");
  write_file(FILE_);
  CONF_CHECK(chmod(ONE, 0640) == 0, "chmod: %s", strerror(errno));
  char want[256], got[256], w0[128], w1[128];
  snprintf(want, sizeof want, "%d:%x:a %d:%x: %d:%x: %d:%x: %d:%x: ", wd_dir, IN_CREATE, wd_file, IN_MODIFY, wd_file,
           IN_CLOSE_WRITE, wd_one, IN_ATTRIB, wd_one, IN_IGNORED);
  watches(w0, sizeof w0);
  conf_ready();
  conf_wait(NULL);
  watches(w1, sizeof w1);
  CONF_CHECK(strcmp(w0, w1) == 0, "watches (wd:mask) now %s, were %s", w1, w0);
  events(got, sizeof got);
  CONF_CHECK(strcmp(got, want) == 0, "queued events (wd:mask:name) now \"%s\", were \"%s\"", got, want);
  write_file(DIR "/b");
  write_file(FILE_);
  CONF_CHECK(chmod(ONE, 0600) == 0, "chmod: %s", strerror(errno));
  snprintf(want, sizeof want, "%d:%x:b %d:%x: %d:%x: ", wd_dir, IN_CREATE, wd_file, IN_MODIFY, wd_file, IN_CLOSE_WRITE);
  events(got, sizeof got);
  CONF_CHECK(strcmp(got, want) == 0, "events after the move \"%s\", want \"%s\"", got, want);
  CONF_CHECK(inotify_add_watch(in, FILE_, IN_MODIFY | IN_MASK_ADD) == wd_file, "the file's wd changed");
  CONF_CHECK(inotify_add_watch(in, DIR, IN_CREATE | IN_MASK_ADD) == wd_dir, "the directory's wd changed");
  conf_pass();
}
