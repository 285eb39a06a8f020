/* TCP over ::1 with both ends in the container, 1 MiB queued each way while
 * neither side reads (most of it in the senders' queues): after the move
 * every byte arrives, in order, with no more sends. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "conf.h"

enum { WANT = 1 << 20 };

static void push(int fd, unsigned seed, size_t* sent) {
  unsigned char buf[65536];
  for (int idle = 0; *sent < WANT && idle < 50;) {
    size_t len = WANT - *sent < sizeof buf ? WANT - *sent : sizeof buf;
    conf_fill(buf, len, seed, *sent);
    ssize_t n = send(fd, buf, len, MSG_DONTWAIT);
    if (n > 0) {
      *sent += (size_t)n;
      idle = 0;
      continue;
    }
    CONF_CHECK(errno == EAGAIN, "send: %s", strerror(errno));
    ++idle;
    usleep(2000);
  }
}

static void pull(int fd, unsigned seed, const char* dir) {
  static unsigned char buf[WANT];
  size_t got = 0;
  for (int idle = 0; got < WANT && idle < 10;) { /* no progress for 1 s: lost */
    ssize_t n = recv(fd, buf + got, WANT - got, MSG_DONTWAIT);
    CONF_CHECK(n != 0 && (n > 0 || errno == EAGAIN), "%s: recv after %zu bytes: %s", dir, got,
               n ? strerror(errno) : "closed");
    if (n > 0) {
      got += (size_t)n;
      idle = 0;
    } else {
      struct pollfd p = {fd, POLLIN, 0};
      idle += poll(&p, 1, 100) == 0;
    }
  }
  CONF_CHECK(got == WANT, "%s: %zu of %d bytes arrive after the move", dir, got, WANT);
  for (size_t i = 0; i < got; ++i) CONF_CHECK(buf[i] == conf_byte(seed, i), "%s: byte %zu differs", dir, i);
}

int main(void) {
  conf_init();
  int l = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  socklen_t al = sizeof a;
  CONF_CHECK(l >= 0 && bind(l, (struct sockaddr*)&a, sizeof a) == 0 && listen(l, 1) == 0, "listen on ::1: %s",
             strerror(errno));
  CONF_CHECK(getsockname(l, (struct sockaddr*)&a, &al) == 0, "getsockname: %s", strerror(errno));
  int c = socket(AF_INET6, SOCK_STREAM, 0);
  CONF_CHECK(connect(c, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  int s = accept(l, NULL, NULL);
  CONF_CHECK(s >= 0, "accept: %s", strerror(errno));
  size_t up = 0, down = 0;
  push(c, 61, &up);
  push(s, 62, &down);
  CONF_CHECK(up == WANT && down == WANT, "only %zu up, %zu down of %d bytes queued", up, down, WANT);
  usleep(50000); /* the last segments reach the receive queues */
  conf_ready();
  conf_wait(NULL);
  pull(s, 61, "client to server");
  pull(c, 62, "server to client");
  CONF_CHECK(send(c, "end", 3, 0) == 3 && recv(s, (char[4]){0}, 4, 0) == 3, "the connection does not go on");
  conf_pass();
}
