/* A process tree: a chain of 5 processes (each the child of the previous), an orphan reparented to a child
 * subreaper, a process stopped with SIGSTOP. After the move each reports the same parent (getppid), the stopped one
 * is still stopped (/proc state T) and continues on SIGCONT. */
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "conf.h"

enum { CHAIN = 5, ORPHAN = CHAIN + 1, REAPER, TAGS };
static const char* const names[TAGS] = {"",        "chain 1", "chain 2", "chain 3",
                                        "chain 4", "chain 5", "orphan",  "subreaper"};
struct rec {
  int tag, pid, ppid;
};
static int cmd[2], out[2];

/* Reports {tag, pid, ppid} now, and again when told (a byte on cmd), then waits to be killed. */
static void report(int tag) {
  struct rec r = {tag, getpid(), getppid()};
  char c;
  if (write(out[1], &r, sizeof r) != sizeof r || read(cmd[0], &c, 1) != 1) _exit(1);
  r.ppid = getppid();
  if (write(out[1], &r, sizeof r) != sizeof r) _exit(1);
  for (;;) pause();
}

/* Each level forks the next one. */
static void chain(void) {
  int level = 1;
  while (level < CHAIN && fork() == 0) ++level;
  report(level);
}

static void reaper(void) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) _exit(1);
  const pid_t mid = fork();
  if (mid == 0) {
    const pid_t parent = getpid();
    if (fork() == 0) {
      while (getppid() == parent) usleep(1000);
      report(ORPHAN);
    }
    _exit(0);
  }
  if (mid < 0 || waitpid(mid, NULL, 0) != mid) _exit(1);
  report(REAPER);
}

/* Reads the reports of all tags into r[tag]. */
static void collect(struct rec* r) {
  struct pollfd p = {.fd = out[0], .events = POLLIN};
  for (int i = 1; i < TAGS; ++i) {
    struct rec x;
    CONF_CHECK(poll(&p, 1, 2000) == 1 && read(out[0], &x, sizeof x) == sizeof x && x.tag > 0 && x.tag < TAGS,
               "%d of %d processes reported", i - 1, TAGS - 1);
    r[x.tag] = x;
  }
}

static char state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  buf[n > 0 ? n : 0] = 0;
  const char* e = strrchr(buf, ')');
  return e && e[1] ? e[2] : '?';
}

int main(void) {
  conf_init();
  CONF_CHECK(pipe(cmd) == 0 && pipe(out) == 0, "pipe: %s", strerror(errno));
  if (fork() == 0) chain();
  if (fork() == 0) reaper();
  const pid_t stopped = fork();
  if (stopped == 0)
    for (;;) pause();
  CONF_CHECK(stopped > 0, "fork: %s", strerror(errno));
  int st = 0;
  CONF_CHECK(kill(stopped, SIGSTOP) == 0 && waitpid(stopped, &st, WUNTRACED) == stopped && WIFSTOPPED(st),
             "SIGSTOP: %s", strerror(errno));
  struct rec before[TAGS], after[TAGS];
  collect(before);
  for (int t = 1; t < TAGS; ++t) {
    const int want = t == 1 ? getpid() : t == ORPHAN ? before[REAPER].pid : t == REAPER ? getpid() : before[t - 1].pid;
    CONF_CHECK(before[t].ppid == want, "setup: %s has parent %d, not %d", names[t], before[t].ppid, want);
  }
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(state(stopped) == 'T', "the stopped process %d is in state %c", (int)stopped, state(stopped));
  CONF_CHECK(write(cmd[1], "xxxxxxxxxxxxxxxx", TAGS - 1) == TAGS - 1, "write: %s", strerror(errno));
  collect(after);
  for (int t = 1; t < TAGS; ++t)
    CONF_CHECK(after[t].pid == before[t].pid && after[t].ppid == before[t].ppid,
               "%s (pid %d, was %d): parent %d, not %d", names[t], after[t].pid, before[t].pid, after[t].ppid,
               before[t].ppid);
  CONF_CHECK(kill(stopped, SIGCONT) == 0 && waitpid(stopped, &st, WCONTINUED) == stopped && WIFCONTINUED(st),
             "the stopped process did not continue on SIGCONT");
  for (int i = 0; i < 100 && state(stopped) != 'S'; ++i) usleep(10000);
  CONF_CHECK(state(stopped) == 'S', "the continued process is in state %c", state(stopped));
  for (int t = 1; t < TAGS; ++t) kill(after[t].pid, SIGKILL);
  kill(stopped, SIGKILL);
  conf_pass();
}
