/* Abstract-namespace Unix sockets: a stream listener with two connections
 * made through it (data queued both ways on the first) and a datagram
 * socket with a datagram queued to its name. After the move the names are
 * still bound, the accepted ends still carry the listener's name (and
 * their clients see it as their peer's), all data arrives, and new
 * connections and datagrams reach them. */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conf.h"

static struct sockaddr_un name(const char* n, socklen_t* len) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strcpy(a.sun_path + 1, n); /* sun_path[0] == 0: abstract */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(n));
  return a;
}

static void named(int fd, const struct sockaddr_un* a, socklen_t len, const char* what) {
  struct sockaddr_un g;
  socklen_t gl = sizeof g;
  CONF_CHECK(getsockname(fd, (struct sockaddr*)&g, &gl) == 0 && gl == len && memcmp(&g, a, len) == 0,
             "%s lost its abstract name", what);
}

int main(void) {
  conf_init();
  socklen_t sl, dl;
  const struct sockaddr_un sa = name("conf_abstract_stream", &sl), da = name("conf_abstract_dgram", &dl);
  int l = socket(AF_UNIX, SOCK_STREAM, 0), d = socket(AF_UNIX, SOCK_DGRAM, 0), u = socket(AF_UNIX, SOCK_DGRAM, 0);
  CONF_CHECK(l >= 0 && bind(l, (const struct sockaddr*)&sa, sl) == 0 && listen(l, 4) == 0, "stream listener: %s",
             strerror(errno));
  CONF_CHECK(d >= 0 && bind(d, (const struct sockaddr*)&da, dl) == 0, "dgram bind: %s", strerror(errno));
  int c = socket(AF_UNIX, SOCK_STREAM, 0);
  CONF_CHECK(connect(c, (const struct sockaddr*)&sa, sl) == 0, "connect: %s", strerror(errno));
  int s = accept(l, NULL, NULL);
  CONF_CHECK(s >= 0, "accept: %s", strerror(errno));
  int c1 = socket(AF_UNIX, SOCK_STREAM, 0);
  CONF_CHECK(connect(c1, (const struct sockaddr*)&sa, sl) == 0, "second connect: %s", strerror(errno));
  int s1 = accept(l, NULL, NULL);
  CONF_CHECK(s1 >= 0, "second accept: %s", strerror(errno));
  unsigned char m[2][2000], b[2000];
  conf_fill(m[0], sizeof m[0], 71, 0);
  conf_fill(m[1], sizeof m[1], 72, 0);
  CONF_CHECK(
      send(c, m[0], sizeof m[0], 0) == (ssize_t)sizeof m[0] && send(s, m[1], sizeof m[1], 0) == (ssize_t)sizeof m[1],
      "send: %s", strerror(errno));
  CONF_CHECK(sendto(u, m[0], 700, 0, (const struct sockaddr*)&da, dl) == 700, "sendto: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  named(l, &sa, sl, "stream listener");
  named(d, &da, dl, "dgram socket");
  struct sockaddr_un g;
  socklen_t gl = sizeof g;
  CONF_CHECK(getpeername(c, (struct sockaddr*)&g, &gl) == 0 && gl == sl && memcmp(&g, &sa, sl) == 0,
             "connected client lost its peer's abstract name");
  named(s, &sa, sl, "accepted end");
  named(s1, &sa, sl, "second accepted end");
  CONF_CHECK(send(c1, "c1", 2, 0) == 2 && recv(s1, b, sizeof b, 0) == 2 && memcmp(b, "c1", 2) == 0,
             "second connection carries no data");
  CONF_CHECK(recv(s, b, sizeof b, MSG_DONTWAIT | MSG_WAITALL) == (ssize_t)sizeof b && memcmp(b, m[0], sizeof b) == 0,
             "client to server: queued data lost");
  CONF_CHECK(recv(c, b, sizeof b, MSG_DONTWAIT) == (ssize_t)sizeof b && memcmp(b, m[1], sizeof b) == 0,
             "server to client: queued data lost");
  CONF_CHECK(recv(d, b, sizeof b, MSG_DONTWAIT) == 700 && memcmp(b, m[0], 700) == 0, "queued datagram lost");
  int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
  CONF_CHECK(connect(c2, (const struct sockaddr*)&sa, sl) == 0, "new connection to the abstract name: %s",
             strerror(errno));
  int s2 = accept(l, NULL, NULL);
  CONF_CHECK(s2 >= 0 && send(c2, "hi", 2, 0) == 2 && recv(s2, b, sizeof b, 0) == 2, "new connection carries no data");
  CONF_CHECK(sendto(u, "dg", 2, 0, (const struct sockaddr*)&da, dl) == 2, "datagram to the abstract name: %s",
             strerror(errno));
  CONF_CHECK(recv(d, b, sizeof b, MSG_DONTWAIT) == 2 && memcmp(b, "dg", 2) == 0, "new datagram lost");
  conf_pass();
}
