/* A Unix stream listener bound to a path in /tmp with one connection pending
 * in its backlog, its client having sent data: after the move accept() gets
 * that connection with the data, it answers, and a new connection works. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conf.h"

static const struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = "/tmp/conf_unix_listen.sock"};

static int dial(void) {
  int c = socket(AF_UNIX, SOCK_STREAM, 0);
  CONF_CHECK(c >= 0 && connect(c, (const struct sockaddr*)&addr, sizeof addr) == 0, "connect: %s", strerror(errno));
  return c;
}

int main(void) {
  conf_init();
  unlink(addr.sun_path);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  CONF_CHECK(l >= 0 && bind(l, (const struct sockaddr*)&addr, sizeof addr) == 0 && listen(l, 4) == 0, "listen: %s",
             strerror(errno));
  int c = dial();
  unsigned char m[3000], b[3000];
  conf_fill(m, sizeof m, 51, 0);
  CONF_CHECK(send(c, m, sizeof m, 0) == (ssize_t)sizeof m, "send: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct pollfd p = {l, POLLIN, 0};
  CONF_CHECK(poll(&p, 1, 0) == 1, "backlog empty after the move");
  int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
  CONF_CHECK(s >= 0, "pending connection lost: %s", strerror(errno));
  CONF_CHECK(poll(&p, 1, 0) == 0, "a second connection appeared in the backlog");
  ssize_t n = recv(s, b, sizeof b, 0);
  CONF_CHECK(n == (ssize_t)sizeof m && memcmp(b, m, sizeof m) == 0, "pending connection's data lost (%zd of %zu bytes)",
             n, sizeof m);
  CONF_CHECK(send(s, "ok", 2, 0) == 2 && recv(c, b, sizeof b, 0) == 2 && memcmp(b, "ok", 2) == 0,
             "pending connection does not answer its client");
  int c2 = dial(), s2 = accept(l, NULL, NULL);
  CONF_CHECK(s2 >= 0, "accept of a new connection: %s", strerror(errno));
  CONF_CHECK(send(c2, "new", 3, 0) == 3 && recv(s2, b, sizeof b, 0) == 3 && memcmp(b, "new", 3) == 0,
             "new connection does not carry data");
  unlink(addr.sun_path);
  conf_pass();
}
