/* A blocked lock waiter on a private file of /tmp: one child holds a POSIX
 * write lock, another waits in F_SETLKW for it. After the move the holder
 * still holds it; told to release, the waiter gets the lock (within 2 s). */
#include <poll.h>
#include <sys/wait.h>

#include "conf.h"

#define F "/tmp/conf-lockwait"

static int lockFd(void) {
  int fd = open(F, O_RDWR);
  if (fd < 0) _exit(1);
  return fd;
}

static int waitByte(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  char c = 0;
  return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1 ? c : -1;
}

int main(void) {
  conf_init();
  int fd = open(F, O_CREAT | O_RDWR, 0600), toHolder[2], fromHolder[2], fromWaiter[2];
  CONF_CHECK(fd >= 0 && pipe(toHolder) == 0 && pipe(fromHolder) == 0 && pipe(fromWaiter) == 0, "setup: %s",
             strerror(errno));
  pid_t holder = fork();
  CONF_CHECK(holder >= 0, "fork: %s", strerror(errno));
  if (holder == 0) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int x = lockFd();
    char ok = fcntl(x, F_SETLK, &fl) == 0 ? 'h' : 'e';
    if (write(fromHolder[1], &ok, 1) != 1 || waitByte(toHolder[0], -1) != 'r') _exit(1);
    fl.l_type = F_UNLCK;
    ok = fcntl(x, F_SETLK, &fl) == 0 ? 'u' : 'e';
    if (write(fromHolder[1], &ok, 1) != 1) _exit(1);
    for (;;) pause();
  }
  CONF_CHECK(waitByte(fromHolder[0], 2000) == 'h', "holder did not take the lock");
  pid_t waiter = fork();
  CONF_CHECK(waiter >= 0, "fork: %s", strerror(errno));
  if (waiter == 0) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    char ok = fcntl(lockFd(), F_SETLKW, &fl) == 0 ? 'g' : 'e';
    if (write(fromWaiter[1], &ok, 1) != 1) _exit(1);
    for (;;) pause();
  }
  /* The waiter is blocked once /proc/locks shows its request ("->"). */
  char want[32], line[256];
  snprintf(want, sizeof want, " %d ", (int)waiter);
  int blocked = 0;
  for (int i = 0; i < 100 && !blocked; ++i) {
    FILE* f = fopen("/proc/locks", "r");
    CONF_CHECK(f, "/proc/locks: %s", strerror(errno));
    while (fgets(line, sizeof line, f)) blocked |= strstr(line, "->") && strstr(line, want);
    fclose(f);
    if (!blocked) usleep(10000);
  }
  CONF_CHECK(blocked, "the waiter does not block in F_SETLKW");
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(waitByte(fromWaiter[0], 0) == -1, "the waiter got the lock before its release");
  struct flock t = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  CONF_CHECK(fcntl(fd, F_GETLK, &t) == 0 && t.l_type == F_WRLCK && t.l_pid == holder,
             "the holder's lock is gone (F_GETLK: type %d, pid %d)", t.l_type, (int)t.l_pid);
  CONF_CHECK(write(toHolder[1], "r", 1) == 1, "write: %s", strerror(errno));
  CONF_CHECK(waitByte(fromHolder[0], 2000) == 'u', "the holder could not release the lock");
  const int got = waitByte(fromWaiter[0], 2000);
  CONF_CHECK(got == 'g', got == 'e' ? "the waiter's F_SETLKW failed" : "the waiter did not get the released lock");
  t = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
  CONF_CHECK(fcntl(fd, F_GETLK, &t) == 0 && t.l_type == F_WRLCK && t.l_pid == waiter, "the waiter's lock not seen");
  kill(holder, SIGKILL);
  kill(waiter, SIGKILL);
  waitpid(holder, NULL, 0);
  waitpid(waiter, NULL, 0);
  conf_pass();
}
