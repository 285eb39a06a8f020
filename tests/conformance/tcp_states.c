/* TCP in the states around the established one: a listener with a
 * connection waiting in its accept queue (data sent on it already), and a
 * half-closed connection (one side shut its writing end, data still queued
 * the other way). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  CONF_CHECK(bind(l, (struct sockaddr*)&a, sizeof a) == 0 && listen(l, 4) == 0, "listen: %s", strerror(errno));
  getsockname(l, (struct sockaddr*)&a, &al);
  /* Half-closed: accepted, the client shut its writing end. */
  int hc = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(connect(hc, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  int hs = accept(l, NULL, NULL);
  CONF_CHECK(hs >= 0 && send(hc, "bye", 3, 0) == 3 && shutdown(hc, SHUT_WR) == 0, "half-close: %s", strerror(errno));
  CONF_CHECK(send(hs, "still here", 10, 0) == 10, "send: %s", strerror(errno));
  /* Pending: connected, not accepted yet, with data. */
  int pc = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(connect(pc, (struct sockaddr*)&a, sizeof a) == 0 && send(pc, "hello", 5, 0) == 5, "pending: %s",
             strerror(errno));
  usleep(100000);
  conf_ready();
  conf_wait(NULL);
  char b[16] = {0};
  CONF_CHECK(recv(hs, b, sizeof b, 0) == 3 && memcmp(b, "bye", 3) == 0, "half-closed: data lost");
  CONF_CHECK(recv(hs, b, sizeof b, 0) == 0, "half-closed: no end of stream");
  CONF_CHECK(recv(hc, b, sizeof b, 0) == 10 && memcmp(b, "still here", 10) == 0, "half-closed: other way lost");
  int ps = accept(l, NULL, NULL);
  CONF_CHECK(ps >= 0, "pending connection lost: %s", strerror(errno));
  memset(b, 0, sizeof b);
  CONF_CHECK(recv(ps, b, sizeof b, 0) == 5 && memcmp(b, "hello", 5) == 0, "pending connection's data lost");
  CONF_CHECK(send(ps, "ok", 2, 0) == 2 && recv(pc, b, sizeof b, 0) == 2, "pending connection does not answer");
  conf_pass();
}
