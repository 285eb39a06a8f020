/* Idle UDP sockets on 127.0.0.1, nothing queued: a bound one and one
 * connected to it, both with SO_RCVBUF set. After the move they keep their
 * addresses, peer and buffer size, and datagrams go both ways; the connected
 * one still ignores datagrams from other senders. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "conf.h"

static int same(const struct sockaddr_in* x, const struct sockaddr_in* y) {
  return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

int main(void) {
  conf_init();
  int r = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ra = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, sa, rb, sb, pb;
  socklen_t al = sizeof ra;
  int bufs[2] = {50000, 70000}, got[2];
  for (int i = 0; i < 2; ++i) {
    socklen_t ol = sizeof got[i];
    CONF_CHECK(setsockopt(i ? s : r, SOL_SOCKET, SO_RCVBUF, &bufs[i], sizeof bufs[i]) == 0 &&
                   getsockopt(i ? s : r, SOL_SOCKET, SO_RCVBUF, &got[i], &ol) == 0,
               "SO_RCVBUF: %s", strerror(errno));
  }
  CONF_CHECK(bind(r, (struct sockaddr*)&ra, sizeof ra) == 0, "bind: %s", strerror(errno));
  CONF_CHECK(getsockname(r, (struct sockaddr*)&ra, &al) == 0, "getsockname: %s", strerror(errno));
  CONF_CHECK(connect(s, (struct sockaddr*)&ra, sizeof ra) == 0, "connect: %s", strerror(errno));
  al = sizeof sa;
  CONF_CHECK(getsockname(s, (struct sockaddr*)&sa, &al) == 0, "getsockname: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  al = sizeof rb;
  CONF_CHECK(getsockname(r, (struct sockaddr*)&rb, &al) == 0 && same(&ra, &rb), "bound socket lost its address");
  al = sizeof sb;
  CONF_CHECK(getsockname(s, (struct sockaddr*)&sb, &al) == 0 && same(&sa, &sb), "connected socket's port changed");
  al = sizeof pb;
  CONF_CHECK(getpeername(s, (struct sockaddr*)&pb, &al) == 0 && same(&ra, &pb), "connected socket lost its peer: %s",
             strerror(errno));
  for (int i = 0; i < 2; ++i) {
    int v = -1;
    socklen_t ol = sizeof v;
    CONF_CHECK(getsockopt(i ? s : r, SOL_SOCKET, SO_RCVBUF, &v, &ol) == 0 && v == got[i],
               "%s socket: SO_RCVBUF %d, was %d", i ? "connected" : "bound", v, got[i]);
  }
  char b[16] = {0};
  struct sockaddr_in from;
  al = sizeof from;
  CONF_CHECK(send(s, "ping", 4, 0) == 4, "send: %s", strerror(errno));
  CONF_CHECK(
      recvfrom(r, b, sizeof b, 0, (struct sockaddr*)&from, &al) == 4 && memcmp(b, "ping", 4) == 0 && same(&from, &sa),
      "datagram to the bound socket lost");
  int o = socket(AF_INET, SOCK_DGRAM, 0);
  CONF_CHECK(sendto(o, "other", 5, 0, (struct sockaddr*)&sa, sizeof sa) == 5, "sendto: %s", strerror(errno));
  CONF_CHECK(sendto(r, "pong", 4, 0, (struct sockaddr*)&sa, sizeof sa) == 4, "sendto: %s", strerror(errno));
  memset(b, 0, sizeof b);
  struct pollfd p = {s, POLLIN, 0};
  CONF_CHECK(poll(&p, 1, 1000) == 1 && recv(s, b, sizeof b, MSG_DONTWAIT) == 4 && memcmp(b, "pong", 4) == 0,
             "datagram to the connected socket lost or not from its peer: '%s'", b);
  conf_pass();
}
