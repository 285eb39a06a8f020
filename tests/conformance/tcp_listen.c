/* A TCP listener on 127.0.0.1 with nothing pending: after the move it still
 * listens on its port, and a new connection is accepted and carries data
 * both ways. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  struct sockaddr_in a;
  int l = conf_tcp_listener(&a, 8);
  conf_ready();
  conf_wait(NULL);
  struct sockaddr_in b;
  socklen_t bl = sizeof b;
  CONF_CHECK(getsockname(l, (struct sockaddr*)&b, &bl) == 0 && b.sin_port == a.sin_port &&
                 b.sin_addr.s_addr == a.sin_addr.s_addr,
             "listener's address changed (port %u -> %u)", ntohs(a.sin_port), ntohs(b.sin_port));
  int acc = 0;
  socklen_t ol = sizeof acc;
  CONF_CHECK(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &ol) == 0 && acc == 1, "socket no longer listening");
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(connect(c, (struct sockaddr*)&a, sizeof a) == 0, "connect after the move: %s", strerror(errno));
  int s = accept(l, NULL, NULL);
  CONF_CHECK(s >= 0, "accept after the move: %s", strerror(errno));
  unsigned char m[1000], r[1000];
  conf_fill(m, sizeof m, 5, 0);
  CONF_CHECK(send(c, m, sizeof m, 0) == (ssize_t)sizeof m, "send: %s", strerror(errno));
  CONF_CHECK(recv(s, r, sizeof r, MSG_WAITALL) == (ssize_t)sizeof r && memcmp(m, r, sizeof m) == 0,
             "data on the new connection lost");
  CONF_CHECK(send(s, "pong", 4, 0) == 4 && recv(c, r, sizeof r, 0) == 4 && memcmp(r, "pong", 4) == 0,
             "the new connection does not answer");
  conf_pass();
}
