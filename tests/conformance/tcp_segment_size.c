/* The segment size of an established TCP loopback connection, both ends:
 * after the move each sends a 32 KiB message, and TCP_MAXSEG reads more than
 * the 536-byte default MSS, as before the move (on loopback up to 65483, less
 * while half the largest window seen is less). A socket CRIU restores computes
 * its segment size before it gets its peer's MSS back and, unless the path
 * MTU it noted changes, sends 524-byte segments for good (net/netns.h,
 * PreparedNetns::unlock). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "conf.h"

enum { MSG = 32 << 10 }; /* within the buffers: one thread sends and reads */

static unsigned char m[MSG], r[MSG];

/* Each end sends MSG bytes, the other reads them back. */
static void exchange(int fd[2], unsigned seed) {
  for (int e = 0; e < 2; ++e) {
    conf_fill(m, sizeof m, seed + (unsigned)e, 0);
    size_t off = 0;
    while (off < sizeof m) {
      ssize_t n = send(fd[e], m + off, sizeof m - off, 0);
      CONF_CHECK(n > 0, "send: %s", strerror(errno));
      ssize_t k = recv(fd[1 - e], r + off, sizeof r - off, MSG_WAITALL);
      CONF_CHECK(k == n, "recv returned %zd, not %zd", k, n);
      off += (size_t)n;
    }
    CONF_CHECK(memcmp(m, r, sizeof m) == 0, "data from the %s end changed", e ? "server" : "client");
  }
}

static int segment_size(int fd) {
  int v = -1;
  socklen_t l = sizeof v;
  CONF_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &v, &l) == 0, "TCP_MAXSEG: %s", strerror(errno));
  return v;
}

int main(void) {
  conf_init();
  int fd[2];
  conf_tcp_pair(fd);
  exchange(fd, 50);
  int before[2] = {segment_size(fd[0]), segment_size(fd[1])};
  CONF_CHECK(before[0] > 536 && before[1] > 536, "segment sizes %d and %d before the move", before[0], before[1]);
  conf_ready();
  conf_wait(NULL);
  exchange(fd, 60);
  for (int e = 0; e < 2; ++e) {
    int now = segment_size(fd[e]);
    CONF_CHECK(now > 536, "%s end sends %d-byte segments, %d before the move", e ? "server" : "client", now,
               before[e]);
  }
  conf_pass();
}
