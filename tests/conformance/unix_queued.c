/* Unix socket pairs of every type with data queued both ways: a stream
 * keeps its bytes, datagrams and seqpackets their boundaries. */
#include <sys/socket.h>

#include "conf.h"

static int pairs[3][2];
static const int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};

int main(void) {
  conf_init();
  for (int t = 0; t < 3; ++t) {
    CONF_CHECK(socketpair(AF_UNIX, types[t] | SOCK_NONBLOCK, 0, pairs[t]) == 0, "socketpair: %s", strerror(errno));
    for (int side = 0; side < 2; ++side)
      for (int k = 0; k < 5; ++k) {
        unsigned char msg[100 + 37 * 5];
        size_t len = 100 + 37 * (size_t)k;
        conf_fill(msg, len, (unsigned)(t * 10 + side), (size_t)k * 1000);
        CONF_CHECK(send(pairs[t][side], msg, len, 0) == (ssize_t)len, "send: %s", strerror(errno));
      }
  }
  conf_ready();
  conf_wait(NULL);
  for (int t = 0; t < 3; ++t)
    for (int side = 0; side < 2; ++side) {
      int rd = pairs[t][1 - side];
      if (types[t] == SOCK_STREAM) {
        unsigned char all[2000];
        size_t got = 0, want = 0;
        for (int k = 0; k < 5; ++k) want += 100 + 37 * (size_t)k;
        ssize_t n;
        while (got < want && (n = recv(rd, all + got, sizeof all - got, 0)) > 0) got += (size_t)n;
        CONF_CHECK(got == want, "stream: %zu of %zu bytes", got, want);
        size_t off = 0;
        for (int k = 0; k < 5; ++k) {
          size_t len = 100 + 37 * (size_t)k;
          for (size_t i = 0; i < len; ++i)
            CONF_CHECK(all[off + i] == conf_byte((unsigned)side, (size_t)k * 1000 + i), "stream byte differs");
          off += len;
        }
        continue;
      }
      for (int k = 0; k < 5; ++k) {
        unsigned char msg[400];
        size_t len = 100 + 37 * (size_t)k;
        ssize_t n = recv(rd, msg, sizeof msg, 0);
        CONF_CHECK(n == (ssize_t)len, "type %d message %d: %zd bytes, want %zu", types[t], k, n, len);
        for (size_t i = 0; i < len; ++i)
          CONF_CHECK(msg[i] == conf_byte((unsigned)(t * 10 + side), (size_t)k * 1000 + i), "message byte differs");
      }
    }
  conf_pass();
}
