/* eventfds: a semaphore one (EFD_SEMAPHORE, count 5), a non-blocking one near
 * its maximum count, and a blocking one a thread waits on (count 0), woken
 * after the move by a write. */
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>

#include "conf.h"

#define BIG 0xfffffffffffffff0ull
#define MAX 0xfffffffffffffffeull

static int blk;
static volatile int woken;
static volatile ssize_t got_n;
static volatile int got_errno;
static uint64_t got;

static void* reader(void* arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  got_n = read(blk, &got, 8);
  got_errno = errno;
  woken = 1;
  return NULL;
}

int main(void) {
  conf_init();
  int sem = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
  int nb = eventfd(0, EFD_NONBLOCK);
  blk = eventfd(0, 0);
  CONF_CHECK(sem >= 0 && nb >= 0 && blk >= 0, "eventfd: %s", strerror(errno));
  uint64_t v = BIG;
  CONF_CHECK(write(nb, &v, 8) == 8, "write: %s", strerror(errno));
  pthread_t t;
  CONF_CHECK(pthread_create(&t, NULL, reader, NULL) == 0, "pthread_create");
  usleep(50000);
  CONF_CHECK(!woken, "the reader did not block");
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(!woken, "the blocked reader returned before the write (%zd: %s)", got_n, strerror(got_errno));
  CONF_CHECK(fcntl(sem, F_GETFL) & O_NONBLOCK && fcntl(nb, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
  CONF_CHECK(!(fcntl(blk, F_GETFL) & O_NONBLOCK), "the blocking eventfd became non-blocking");
  for (int i = 0; i < 5; ++i) {
    v = 0;
    CONF_CHECK(read(sem, &v, 8) == 8, "semaphore: read %d: %s", i, strerror(errno));
    CONF_CHECK(v == 1, "semaphore: read %d gives %llu (EFD_SEMAPHORE lost)", i, (unsigned long long)v);
  }
  CONF_CHECK(read(sem, &v, 8) < 0 && errno == EAGAIN, "semaphore: count above 5");
  v = MAX - BIG;
  CONF_CHECK(write(nb, &v, 8) == 8, "large count: cannot reach the maximum (%s)", strerror(errno));
  v = 1;
  CONF_CHECK(write(nb, &v, 8) < 0 && errno == EAGAIN, "large count: above the maximum");
  CONF_CHECK(read(nb, &v, 8) == 8 && v == MAX, "large count: %#llx", (unsigned long long)v);
  v = 7;
  CONF_CHECK(write(blk, &v, 8) == 8, "write: %s", strerror(errno));
  for (int i = 0; i < 100 && !woken; ++i) usleep(10000);
  CONF_CHECK(woken, "the blocked reader is not woken by a write");
  CONF_CHECK(got_n == 8 && got == 7, "the woken reader got %zd bytes, %llu (%s)", got_n, (unsigned long long)got,
             got_n < 0 ? strerror(got_errno) : "");
  pthread_join(t, NULL);
  conf_pass();
}
