/* A TCP connection with both ends in the container (loopback), megabytes
 * queued both ways while neither side reads: after the move every byte
 * arrives, in order. CONF_MB sets the amount per direction (default 4).
 * With CONF_ON_ETH0 (tcp_eth0_queued.c): over the container's own eth0
 * address, 8 MiB by default. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "conf.h"

struct dir {
  int from, to;
  unsigned seed;
  size_t sent, got;
};

static void push(struct dir* d, size_t want) {
  unsigned char buf[65536];
  while (d->sent < want) {
    size_t len = want - d->sent < sizeof buf ? want - d->sent : sizeof buf;
    conf_fill(buf, len, d->seed, d->sent);
    ssize_t n = send(d->from, buf, len, MSG_DONTWAIT);
    if (n <= 0) return;
    d->sent += (size_t)n;
  }
}

static void pull(struct dir* d) {
  unsigned char buf[65536];
  ssize_t n;
  while ((n = recv(d->to, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
    for (ssize_t i = 0; i < n; ++i)
      CONF_CHECK(buf[i] == conf_byte(d->seed, d->got + (size_t)i), "stream %u: byte %zu differs", d->seed,
                 d->got + (size_t)i);
    d->got += (size_t)n;
  }
  CONF_CHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "stream %u: recv after %zu bytes: %s", d->seed,
             d->got, n == 0 ? "closed" : strerror(errno));
}

int main(void) {
  conf_init();
  const char* mb = getenv("CONF_MB");
#ifdef CONF_ON_ETH0
  const size_t want = (size_t)(mb ? atoi(mb) : 8) << 20;
  struct sockaddr_in a = {.sin_family = AF_INET};
  struct ifaddrs *ifs, *i;
  CONF_CHECK(getifaddrs(&ifs) == 0, "getifaddrs: %s", strerror(errno));
  for (i = ifs; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && strcmp(i->ifa_name, "eth0") == 0) break;
  CONF_CHECK(i != NULL, "no IPv4 address on eth0");
  a.sin_addr = ((struct sockaddr_in*)i->ifa_addr)->sin_addr;
  freeifaddrs(ifs);
#else
  const size_t want = (size_t)(mb ? atoi(mb) : 4) << 20;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
#endif
  int l = socket(AF_INET, SOCK_STREAM, 0);
  socklen_t al = sizeof a;
  CONF_CHECK(bind(l, (struct sockaddr*)&a, sizeof a) == 0 && listen(l, 1) == 0, "listen: %s", strerror(errno));
  getsockname(l, (struct sockaddr*)&a, &al);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CONF_CHECK(connect(c, (struct sockaddr*)&a, sizeof a) == 0, "connect: %s", strerror(errno));
  int s = accept(l, NULL, NULL);
  CONF_CHECK(s >= 0, "accept: %s", strerror(errno));
  struct dir up = {c, s, 3, 0, 0}, down = {s, c, 4, 0, 0};
  push(&up, want);  /* until the kernel takes no more */
  push(&down, want);
  conf_ready();
  conf_wait(NULL);
  int idle = 0;
  while (up.got < want || down.got < want) {
    const size_t before = up.got + down.got;
    push(&up, want);
    push(&down, want);
    struct pollfd p[2] = {{s, POLLIN, 0}, {c, POLLIN, 0}};
    poll(p, 2, 100);
    pull(&up);
    pull(&down);
    idle = up.got + down.got == before ? idle + 1 : 0;
    CONF_CHECK(idle < 200, "stuck: %zu/%zu bytes up, %zu/%zu down (sent %zu, %zu)", up.got, want, down.got, want,
               up.sent, down.sent);
  }
  conf_pass();
}
