/* Threads blocked across the move: two in pthread_cond_wait, one in pthread_mutex_lock (a mutex the main thread
 * holds), two in pthread_barrier_wait (count 3), each with its own __thread values and name (pthread_setname_np).
 * After SIGTERM all are released and each reports its TLS values and name. */
#include <pthread.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

#include "conf.h"

enum { N = 6 }; /* the last one, started after the move, is the barrier's third */
static const char* const kinds[N] = {"cond wait", "cond wait", "mutex lock", "barrier", "barrier", "barrier (new)"};
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER, held = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t bar;
static int go;
static __thread int tlsInit = 7; /* .tdata: the same in every thread */
static __thread int tlsMine;     /* .tbss: set by each thread */
static __thread char tlsName[16];

static struct {
  volatile pid_t tid;
  int rc, init, mine;
  char name[16], tlsName[16];
} res[N];

static void* run(void* arg) {
  const int i = (int)(intptr_t)arg;
  tlsMine = 100 + i;
  snprintf(tlsName, sizeof tlsName, "conf-sync-%d", i);
  pthread_setname_np(pthread_self(), tlsName);
  res[i].tid = gettid();
  int rc = 0;
  if (i < 2) {
    pthread_mutex_lock(&m);
    while (!go) rc |= pthread_cond_wait(&cond, &m);
    pthread_mutex_unlock(&m);
  } else if (i == 2) {
    if ((rc = pthread_mutex_lock(&held)) == 0) pthread_mutex_unlock(&held);
  } else {
    rc = pthread_barrier_wait(&bar);
  }
  res[i].rc = rc, res[i].init = tlsInit, res[i].mine = tlsMine;
  prctl(PR_GET_NAME, res[i].name);
  memcpy(res[i].tlsName, tlsName, sizeof tlsName);
  return NULL;
}

/* The state letter of thread `tid` in /proc. */
static char state(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  int fd = open(path, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  buf[n > 0 ? n : 0] = 0;
  const char* e = strrchr(buf, ')');
  return e && e[1] ? e[2] : '?';
}

int main(void) {
  conf_init();
  tlsMine = 99;
  pthread_barrier_init(&bar, NULL, 3);
  pthread_mutex_lock(&held);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, NULL); /* SIGTERM goes to the main thread */
  pthread_t t[N];
  for (int i = 0; i < N - 1; ++i)
    CONF_CHECK(pthread_create(&t[i], NULL, run, (void*)(intptr_t)i) == 0, "pthread_create");
  pthread_sigmask(SIG_UNBLOCK, &term, NULL);
  for (int i = 0, waited = 0; i < N - 1; ++i)
    while (!res[i].tid || state(res[i].tid) != 'S') {
      CONF_CHECK(++waited < 1000, "thread %d (%s) does not block", i, kinds[i]);
      usleep(1000);
    }
  conf_ready();
  conf_wait(NULL);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  CONF_CHECK(pthread_mutex_timedlock(&m, &until) == 0, "the condition variable's mutex stays locked");
  go = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&m);
  pthread_mutex_unlock(&held);
  CONF_CHECK(pthread_create(&t[N - 1], NULL, run, (void*)(intptr_t)(N - 1)) == 0, "pthread_create");
  int serial = 0;
  for (int i = 0; i < N; ++i) {
    CONF_CHECK(pthread_timedjoin_np(t[i], NULL, &until) == 0, "thread %d (%s) not released", i, kinds[i]);
    char want[16];
    snprintf(want, sizeof want, "conf-sync-%d", i);
    CONF_CHECK(res[i].init == 7 && res[i].mine == 100 + i && !strcmp(res[i].tlsName, want),
               "thread %d: TLS %d %d '%s', not 7 %d '%s'", i, res[i].init, res[i].mine, res[i].tlsName, 100 + i, want);
    CONF_CHECK(!strcmp(res[i].name, want), "thread %d is named '%s', not '%s'", i, res[i].name, want);
    CONF_CHECK(res[i].rc == 0 || (i >= 3 && res[i].rc == PTHREAD_BARRIER_SERIAL_THREAD), "thread %d (%s): error %d", i,
               kinds[i], res[i].rc);
    serial += res[i].rc == PTHREAD_BARRIER_SERIAL_THREAD;
  }
  CONF_CHECK(serial == 1, "%d barrier waiters were told they were the serial one", serial);
  CONF_CHECK(tlsInit == 7 && tlsMine == 99, "main thread TLS %d %d, not 7 99", tlsInit, tlsMine);
  conf_pass();
}
