/* UDP over ::1: datagrams queued unread on a bound socket keep their
 * boundaries, order and sender; a connected socket stays connected. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  int r = socket(AF_INET6, SOCK_DGRAM, 0), s = socket(AF_INET6, SOCK_DGRAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT}, sa;
  socklen_t al = sizeof a;
  CONF_CHECK(r >= 0 && s >= 0 && bind(r, (struct sockaddr*)&a, sizeof a) == 0, "bind to ::1: %s", strerror(errno));
  CONF_CHECK(getsockname(r, (struct sockaddr*)&a, &al) == 0, "getsockname: %s", strerror(errno));
  CONF_CHECK(connect(s, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  al = sizeof sa;
  CONF_CHECK(getsockname(s, (struct sockaddr*)&sa, &al) == 0, "getsockname: %s", strerror(errno));
  for (int k = 0; k < 8; ++k) {
    unsigned char msg[600];
    conf_fill(msg, 100 + 50 * (size_t)k, 12, (size_t)k * 1000);
    CONF_CHECK(send(s, msg, 100 + 50 * (size_t)k, 0) == (ssize_t)(100 + 50 * k), "send: %s", strerror(errno));
  }
  conf_ready();
  conf_wait(NULL);
  for (int k = 0; k < 8; ++k) {
    unsigned char msg[1000];
    struct sockaddr_in6 from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(r, msg, sizeof msg, MSG_DONTWAIT, (struct sockaddr*)&from, &fl);
    CONF_CHECK(n == 100 + 50 * k, "datagram %d: %zd bytes", k, n);
    CONF_CHECK(from.sin6_family == AF_INET6 && from.sin6_port == sa.sin6_port && IN6_IS_ADDR_LOOPBACK(&from.sin6_addr),
               "datagram %d: sender's address lost", k);
    for (ssize_t i = 0; i < n; ++i)
      CONF_CHECK(msg[i] == conf_byte(12, (size_t)k * 1000 + (size_t)i), "datagram %d differs", k);
  }
  CONF_CHECK(recv(r, (char[8]){0}, 8, MSG_DONTWAIT) < 0 && errno == EAGAIN, "an extra datagram appeared");
  CONF_CHECK(send(s, "after", 5, 0) == 5, "connected socket lost its peer: %s", strerror(errno));
  char b[8];
  CONF_CHECK(recv(r, b, sizeof b, 0) == 5, "datagram after the move lost");
  conf_pass();
}
