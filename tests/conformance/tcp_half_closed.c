/* A half-closed TCP connection: the client sent bytes then shut its writing
 * end; the server answered with data the client has not read. After the
 * move the server reads the bytes then EOF, the client the data; the open
 * direction still carries data, the closed one refuses it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  struct sockaddr_in a;
  int l = conf_tcp_listener(&a, 1);
  int c, s;
  conf_tcp_connect(l, &a, &c, &s);
  unsigned char up[3000], down[5000], buf[8000];
  conf_fill(up, sizeof up, 21, 0);
  conf_fill(down, sizeof down, 22, 0);
  CONF_CHECK(send(c, up, sizeof up, 0) == (ssize_t)sizeof up, "send: %s", strerror(errno));
  CONF_CHECK(shutdown(c, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
  CONF_CHECK(send(s, down, sizeof down, 0) == (ssize_t)sizeof down, "send: %s", strerror(errno));
  usleep(50000);
  struct tcp_info ti;
  socklen_t tl = sizeof ti;
  CONF_CHECK(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_FIN_WAIT2,
             "client not in FIN_WAIT2 (%d)", ti.tcpi_state);
  conf_ready();
  conf_wait(NULL);
  tl = sizeof ti;
  CONF_CHECK(getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_CLOSE_WAIT,
             "server not in CLOSE_WAIT after the move (%d)", ti.tcpi_state);
  CONF_CHECK(recv(s, buf, sizeof up, MSG_WAITALL) == (ssize_t)sizeof up && memcmp(buf, up, sizeof up) == 0,
             "client's bytes before its shutdown lost");
  CONF_CHECK(recv(s, buf, sizeof buf, MSG_DONTWAIT) == 0, "server sees no EOF after the bytes");
  CONF_CHECK(recv(c, buf, sizeof down, MSG_WAITALL) == (ssize_t)sizeof down && memcmp(buf, down, sizeof down) == 0,
             "server's data queued to the client lost");
  CONF_CHECK(send(s, "more", 4, MSG_NOSIGNAL) == 4, "open direction refuses data: %s", strerror(errno));
  CONF_CHECK(recv(c, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "more", 4) == 0, "open direction lost data");
  CONF_CHECK(send(c, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "client's shut writing end reopened");
  CONF_CHECK(close(s) == 0 && recv(c, buf, sizeof buf, 0) == 0, "client sees no EOF after the server closes");
  conf_pass();
}
