/* UDP over loopback: datagrams queued unread on a bound socket keep their
 * boundaries and order; a connected socket stays connected. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  int r = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  CONF_CHECK(bind(r, (struct sockaddr*)&a, sizeof a) == 0, "bind: %s", strerror(errno));
  getsockname(r, (struct sockaddr*)&a, &al);
  CONF_CHECK(connect(s, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  for (int k = 0; k < 8; ++k) {
    unsigned char msg[600];
    conf_fill(msg, 100 + 50 * (size_t)k, 11, (size_t)k * 1000);
    CONF_CHECK(send(s, msg, 100 + 50 * (size_t)k, 0) == (ssize_t)(100 + 50 * k), "send: %s", strerror(errno));
  }
  conf_ready();
  conf_wait(NULL);
  for (int k = 0; k < 8; ++k) {
    unsigned char msg[1000];
    ssize_t n = recv(r, msg, sizeof msg, MSG_DONTWAIT);
    CONF_CHECK(n == 100 + 50 * k, "datagram %d: %zd bytes", k, n);
    for (ssize_t i = 0; i < n; ++i) CONF_CHECK(msg[i] == conf_byte(11, (size_t)k * 1000 + (size_t)i), "datagram %d differs", k);
  }
  CONF_CHECK(send(s, "after", 5, 0) == 5, "connected socket lost its peer: %s", strerror(errno));
  char b[8];
  CONF_CHECK(recv(r, b, sizeof b, 0) == 5, "datagram after the move lost");
  conf_pass();
}
