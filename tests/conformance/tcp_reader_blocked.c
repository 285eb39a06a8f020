/* Threads blocked in TCP syscalls across the move: one in recv() on an idle
 * loopback connection, and a 64 MiB pattern stream whose writer thread blocks
 * in send() because its reader thread reads slowly (64 KiB per 10 ms) so the
 * window closes. After SIGTERM the idle recv() gets its wake-up message and
 * the reader drains the stream fast: every byte, then EOF. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "conf.h"

enum { TOTAL = 64 << 20, SLOW = 64 << 10, HOLD = 16 << 20, SEED = 41 };

static int idle[2], st[2]; /* [0]: the blocked reader's end / the writer's end */
static volatile size_t sent, got;
static volatile int idle_done, stream_done;
static char idle_err[200], stream_err[200];

static void* idle_reader(void* arg) {
  (void)arg;
  char b[16] = {0};
  ssize_t n = recv(idle[0], b, sizeof b, 0);
  if (n != 4 || memcmp(b, "wake", 4) != 0)
    snprintf(idle_err, sizeof idle_err, "blocked recv() returned %zd (%s)", n, n < 0 ? strerror(errno) : b);
  idle_done = 1;
  return NULL;
}

static void* writer(void* arg) {
  (void)arg;
  static unsigned char buf[256 << 10];
  while (sent < TOTAL) {
    size_t len = TOTAL - sent < sizeof buf ? TOTAL - sent : sizeof buf;
    conf_fill(buf, len, SEED, sent);
    ssize_t n = send(st[0], buf, len, 0);
    if (n <= 0) {
      snprintf(stream_err, sizeof stream_err, "send after %zu bytes: %s", sent, strerror(errno));
      return NULL;
    }
    sent += (size_t)n;
  }
  shutdown(st[0], SHUT_WR);
  return NULL;
}

static void* reader(void* arg) {
  (void)arg;
  static unsigned char buf[256 << 10];
  for (;;) {
    if (!conf_term && got >= TOTAL - HOLD) { /* keep the stream unfinished until the move is over */
      usleep(10000);
      continue;
    }
    ssize_t n = recv(st[1], buf, conf_term ? sizeof buf : SLOW, 0);
    if (n <= 0) {
      if (n < 0) snprintf(stream_err, sizeof stream_err, "recv after %zu bytes: %s", got, strerror(errno));
      break;
    }
    for (ssize_t i = 0; i < n; ++i)
      if (buf[i] != conf_byte(SEED, got + (size_t)i)) {
        snprintf(stream_err, sizeof stream_err, "stream byte %zu differs", got + (size_t)i);
        stream_done = 1;
        return NULL;
      }
    got += (size_t)n;
    if (!conf_term) usleep(10000);
  }
  if (!stream_err[0] && got != TOTAL) snprintf(stream_err, sizeof stream_err, "EOF after %zu of %d bytes", got, TOTAL);
  stream_done = 1;
  return NULL;
}

int main(void) {
  conf_init();
  struct sockaddr_in a;
  int l = conf_tcp_listener(&a, 2);
  conf_tcp_connect(l, &a, &idle[1], &idle[0]);
  conf_tcp_connect(l, &a, &st[1], &st[0]);
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old); /* SIGTERM goes to the main thread, not into a blocked recv() */
  pthread_t t[3];
  CONF_CHECK(pthread_create(&t[0], NULL, idle_reader, NULL) == 0 && pthread_create(&t[1], NULL, writer, NULL) == 0 &&
                 pthread_create(&t[2], NULL, reader, NULL) == 0,
             "pthread_create");
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (int i = 0; i < 300 && sent < got + (2 << 20); ++i) usleep(10000);
  CONF_CHECK(sent >= got + (2 << 20), "the writer does not get ahead of the reader (%zu sent, %zu read)", sent, got);
  CONF_CHECK(!idle_done, "idle recv() returned early: %s", idle_err);
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(!idle_done, "idle recv() returned during the move: %s", idle_err);
  CONF_CHECK(send(idle[1], "wake", 4, 0) == 4, "send to the idle connection: %s", strerror(errno));
  for (int i = 0; i < 1500 && !(idle_done && stream_done); ++i) usleep(10000);
  CONF_CHECK(idle_done, "the thread blocked in recv() does not get its data");
  CONF_CHECK(!idle_err[0], "%s", idle_err);
  CONF_CHECK(stream_done, "stream stuck: %zu of %d bytes sent, %zu read", sent, TOTAL, got);
  CONF_CHECK(!stream_err[0], "%s", stream_err);
  conf_pass();
}
