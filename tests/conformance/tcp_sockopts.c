/* An established TCP loopback connection with options set on both ends:
 * TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, SO_RCVBUF/SO_SNDBUF,
 * TCP_CORK off, SO_LINGER, IP_TOS. After the move getsockopt() reads the same
 * values and the connection carries data both ways. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "conf.h"

struct opt {
  int level, name;
  const char* what;
  int val[2]; /* per end */
};

static struct opt opts[] = {
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", {1, 0}},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", {1, 1}},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", {77, 300}},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", {13, 29}},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", {4, 7}},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", {98304, 200000}},
    {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", {131072, 81920}},
    {IPPROTO_TCP, TCP_CORK, "TCP_CORK", {0, 0}},
    {IPPROTO_IP, IP_TOS, "IP_TOS", {IPTOS_LOWDELAY, IPTOS_THROUGHPUT}},
};
enum { NOPT = sizeof opts / sizeof opts[0] };

int main(void) {
  conf_init();
  int fd[2];
  conf_tcp_pair(fd);
  int got[NOPT][2];
  struct linger lg[2] = {{1, 5}, {1, 0}}, lgot[2];
  for (int e = 0; e < 2; ++e) {
    for (int i = 0; i < NOPT; ++i) {
      socklen_t ol = sizeof got[i][e];
      CONF_CHECK(setsockopt(fd[e], opts[i].level, opts[i].name, &opts[i].val[e], sizeof(int)) == 0, "set %s: %s",
                 opts[i].what, strerror(errno));
      CONF_CHECK(getsockopt(fd[e], opts[i].level, opts[i].name, &got[i][e], &ol) == 0, "get %s: %s", opts[i].what,
                 strerror(errno));
    }
    socklen_t ll = sizeof lgot[e];
    CONF_CHECK(setsockopt(fd[e], SOL_SOCKET, SO_LINGER, &lg[e], sizeof lg[e]) == 0 &&
                   getsockopt(fd[e], SOL_SOCKET, SO_LINGER, &lgot[e], &ll) == 0,
               "SO_LINGER: %s", strerror(errno));
  }
  conf_ready();
  conf_wait(NULL);
  for (int e = 0; e < 2; ++e) {
    for (int i = 0; i < NOPT; ++i) {
      int v = -1;
      socklen_t ol = sizeof v;
      CONF_CHECK(getsockopt(fd[e], opts[i].level, opts[i].name, &v, &ol) == 0, "get %s: %s", opts[i].what,
                 strerror(errno));
      CONF_CHECK(v == got[i][e], "%s end: %s is %d, was %d", e ? "server" : "client", opts[i].what, v, got[i][e]);
    }
    struct linger v = {-1, -1};
    socklen_t ll = sizeof v;
    CONF_CHECK(getsockopt(fd[e], SOL_SOCKET, SO_LINGER, &v, &ll) == 0 && v.l_onoff == lgot[e].l_onoff &&
                   v.l_linger == lgot[e].l_linger,
               "%s end: SO_LINGER is {%d, %d}, was {%d, %d}", e ? "server" : "client", v.l_onoff, v.l_linger,
               lgot[e].l_onoff, lgot[e].l_linger);
  }
  unsigned char m[4096], r[4096];
  for (int e = 0; e < 2; ++e) {
    conf_fill(m, sizeof m, 30 + (unsigned)e, 0);
    CONF_CHECK(send(fd[e], m, sizeof m, 0) == (ssize_t)sizeof m, "send: %s", strerror(errno));
    CONF_CHECK(recv(fd[1 - e], r, sizeof r, MSG_WAITALL) == (ssize_t)sizeof r && memcmp(m, r, sizeof m) == 0,
               "data from the %s end lost", e ? "server" : "client");
  }
  conf_pass();
}
