/* The conformance suite's common part (scripts/conformance.sh, issue 20).
 * A program sets kernel state up, calls conf_ready() (the runner then
 * migrates its container), waits for SIGTERM in conf_wait(), checks the
 * state and ends with conf_pass() or conf_fail(). The verdict goes to the
 * file named by $CONF_OUT (a bind the runner reads), one line:
 * "PASS" or "FAIL: why". */
#pragma once
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t conf_term;

static void conf_on_term(int sig) {
  (void)sig;
  conf_term = 1;
}

static void conf_verdict(const char* line) {
  const char* out = getenv("CONF_OUT");
  FILE* f = out ? fopen(out, "w") : NULL;
  if (f) {
    fprintf(f, "%s\n", line);
    fclose(f);
  }
  fprintf(stderr, "%s\n", line);
}

static void conf_fail(const char* fmt, ...) {
  char msg[512] = "FAIL: ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + 6, sizeof msg - 6, fmt, ap);
  va_end(ap);
  conf_verdict(msg);
  exit(1);
}

#define CONF_CHECK(cond, ...)            \
  do {                                   \
    if (!(cond)) conf_fail(__VA_ARGS__); \
  } while (0)

static void conf_pass(void) {
  conf_verdict("PASS");
  exit(0);
}

/* SIGTERM is caught from the start; the pid file tells the runner whom to
 * signal, the ready file that the state is set up. */
static void conf_ready(void) {
  FILE* f = fopen("/tmp/conf.pid", "w");
  if (f) {
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
  }
  f = fopen("/tmp/conf.ready", "w");
  if (f) fclose(f);
}

static void conf_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = conf_on_term;
  sigaction(SIGTERM, &sa, NULL);
}

/* Sleeps until SIGTERM; `tick`, when given, runs every 10 ms meanwhile. */
static void conf_wait(void (*tick)(void)) {
  while (!conf_term) {
    if (tick) tick();
    usleep(10000);
  }
}

/* A deterministic byte stream: byte i of stream `seed`. Streams of nearby
 * seeds differ in (almost) every byte. */
static unsigned char conf_byte(unsigned seed, size_t i) {
  return (unsigned char)(((unsigned)i * 2654435761u + seed * 2246822519u) >> 13);
}

static void conf_fill(unsigned char* p, size_t n, unsigned seed, size_t from) {
  for (size_t i = 0; i < n; ++i) p[i] = conf_byte(seed, from + i);
}

/* A FIFO made at `path` (removed first), opened both ways without
 * blocking: *r and *w get the ends. */
static void conf_fifo(const char* path, int* r, int* w) {
  unlink(path);
  CONF_CHECK(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno));
  *r = open(path, O_RDONLY | O_NONBLOCK);
  *w = open(path, O_WRONLY | O_NONBLOCK);
  CONF_CHECK(*r >= 0 && *w >= 0, "open %s: %s", path, strerror(errno));
}

/* The path of a file beside the verdict, in the runner's bind (/results):
 * $CONF_OUT with `suffix` appended. */
static void conf_results_path(char* path, size_t n, const char* suffix) {
  const char* out = getenv("CONF_OUT");
  snprintf(path, n, "%s%s", out ? out : "/results/conf", suffix);
}

/* A TCP listener on 127.0.0.1, an ephemeral port; *a gets its address. */
static int conf_tcp_listener(struct sockaddr_in* a, int backlog) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof *a;
  CONF_CHECK(l >= 0 && bind(l, (struct sockaddr*)a, sizeof *a) == 0 && listen(l, backlog) == 0, "listen: %s",
             strerror(errno));
  CONF_CHECK(getsockname(l, (struct sockaddr*)a, &al) == 0, "getsockname: %s", strerror(errno));
  return l;
}

/* A connection to listener l (address *a): *client connected, *server the
 * end l accepted. */
static void conf_tcp_connect(int l, const struct sockaddr_in* a, int* client, int* server) {
  *client = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(*client >= 0 && connect(*client, (const struct sockaddr*)a, sizeof *a) == 0, "connect: %s",
             strerror(errno));
  *server = accept(l, NULL, NULL);
  CONF_CHECK(*server >= 0, "accept: %s", strerror(errno));
}

/* A loopback connection whose listener stays open: fd[0] the client's end,
 * fd[1] the server's. */
static void conf_tcp_pair(int fd[2]) {
  struct sockaddr_in a;
  int l = conf_tcp_listener(&a, 1);
  conf_tcp_connect(l, &a, &fd[0], &fd[1]);
}
