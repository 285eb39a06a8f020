/* A TCP listener with one connection completed but not accepted, its client
 * having sent 5 bytes: after the move accept() returns exactly that one
 * connection, with the bytes, and it answers the client. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  struct sockaddr_in a;
  int l = conf_tcp_listener(&a, 4);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(connect(c, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  CONF_CHECK(send(c, "knock", 5, 0) == 5, "send: %s", strerror(errno));
  struct sockaddr_in ca;
  socklen_t cal = sizeof ca;
  CONF_CHECK(getsockname(c, (struct sockaddr*)&ca, &cal) == 0, "getsockname: %s", strerror(errno));
  struct pollfd p = {l, POLLIN, 0};
  CONF_CHECK(poll(&p, 1, 1000) == 1, "the connection does not reach the accept queue");
  usleep(50000); /* let the 5 bytes land on the queued socket */
  conf_ready();
  conf_wait(NULL);
  p.revents = 0;
  CONF_CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLIN), "accept queue empty after the move");
  struct sockaddr_in pa;
  socklen_t pal = sizeof pa;
  int s = accept4(l, (struct sockaddr*)&pa, &pal, SOCK_NONBLOCK);
  CONF_CHECK(s >= 0, "queued connection lost: %s", strerror(errno));
  CONF_CHECK(pa.sin_port == ca.sin_port, "accepted a connection from port %u, not the client's %u", ntohs(pa.sin_port),
             ntohs(ca.sin_port));
  CONF_CHECK(poll(&p, 1, 0) == 0, "a second connection appeared in the accept queue");
  char b[16] = {0};
  p.fd = s;
  CONF_CHECK(poll(&p, 1, 1000) == 1, "queued connection's data lost (nothing readable)");
  CONF_CHECK(recv(s, b, sizeof b, 0) == 5 && memcmp(b, "knock", 5) == 0, "queued connection's data lost: '%s'", b);
  CONF_CHECK(send(s, "who's there", 11, 0) == 11, "send: %s", strerror(errno));
  memset(b, 0, sizeof b);
  CONF_CHECK(recv(c, b, 11, MSG_WAITALL) == 11 && memcmp(b, "who's there", 11) == 0,
             "the accepted connection does not answer the client");
  conf_pass();
}
