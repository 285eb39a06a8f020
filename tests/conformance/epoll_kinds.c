/* An epoll set with 64-bit cookies: an edge-triggered entry and a one-shot
 * one, both ready and not yet reported, a one-shot one already reported
 * (disarmed); the set nested in another epoll. Entries (fdinfo), pending
 * events, edge-triggering and the disarmed state kept. */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "conf.h"

#define C_ET 0x1111222233334444ull
#define C_ONE 0x5555666677778888ull
#define C_DIS 0x99990000aaaabbbbull
#define C_NEST 0xccccddddeeeeffffull

static int cmp(const void* a, const void* b) { return strcmp(a, b); }

/* The "tfd: events: data:" part of each entry in the epoll's fdinfo, sorted, joined. */
static void entries(int ep, char* out, size_t size) {
  char path[64], line[256], e[8][80];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
  FILE* f = fopen(path, "r");
  int n = 0, tfd;
  unsigned ev;
  unsigned long long data;
  while (f && n < 8 && fgets(line, sizeof line, f))
    if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) == 3)
      snprintf(e[n++], sizeof e[0], "%d:%x:%llx ", tfd, ev, data);
  if (f) fclose(f);
  qsort(e, (size_t)n, sizeof e[0], cmp);
  out[0] = 0;
  for (int i = 0; i < n; ++i) strncat(out, e[i], size - strlen(out) - 1);
}

static void add(int ep, int fd, uint32_t events, uint64_t cookie) {
  struct epoll_event e = {.events = events, .data.u64 = cookie};
  CONF_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0, "epoll_ctl: %s", strerror(errno));
}

static void poke(int fd) {
  uint64_t one = 1;
  CONF_CHECK(write(fd, &one, 8) == 8, "eventfd write: %s", strerror(errno));
}

int main(void) {
  conf_init();
  int ep = epoll_create1(0), outer = epoll_create1(0);
  int et = eventfd(0, EFD_NONBLOCK), one = eventfd(0, EFD_NONBLOCK), dis = eventfd(0, EFD_NONBLOCK);
  CONF_CHECK(ep >= 0 && outer >= 0 && et >= 0 && one >= 0 && dis >= 0, "epoll/eventfd: %s", strerror(errno));
  struct epoll_event got[8];
  add(ep, dis, EPOLLIN | EPOLLONESHOT, C_DIS);
  poke(dis);
  CONF_CHECK(epoll_wait(ep, got, 8, 0) == 1 && got[0].data.u64 == C_DIS, "one-shot entry not reported");
  add(ep, et, EPOLLIN | EPOLLET, C_ET);
  add(ep, one, EPOLLIN | EPOLLONESHOT, C_ONE);
  poke(et);
  poke(one);
  add(outer, ep, EPOLLIN, C_NEST);
  char before[512], before_outer[128], after[512];
  entries(ep, before, sizeof before);
  entries(outer, before_outer, sizeof before_outer);
  conf_ready();
  conf_wait(NULL);
  entries(ep, after, sizeof after);
  CONF_CHECK(strcmp(before, after) == 0, "entries (fd:events:cookie) now %s, were %s", after, before);
  entries(outer, after, sizeof after);
  CONF_CHECK(strcmp(before_outer, after) == 0, "outer entries now %s, were %s", after, before_outer);
  int n = epoll_wait(outer, got, 8, 0);
  CONF_CHECK(n == 1 && got[0].data.u64 == C_NEST, "outer epoll: %d events, cookie %#llx", n,
             n > 0 ? (unsigned long long)got[0].data.u64 : 0);
  n = epoll_wait(ep, got, 8, 0);
  CONF_CHECK(n == 2, "%d events pending, want 2 (edge-triggered and one-shot)", n);
  int seen_et = 0, seen_one = 0;
  for (int i = 0; i < n; ++i) {
    seen_et += got[i].data.u64 == C_ET && got[i].events == EPOLLIN;
    seen_one += got[i].data.u64 == C_ONE && got[i].events == EPOLLIN;
  }
  CONF_CHECK(seen_et == 1 && seen_one == 1, "pending events with other cookies: %#llx %#llx",
             (unsigned long long)got[0].data.u64, (unsigned long long)got[1].data.u64);
  n = epoll_wait(ep, got, 8, 0);
  CONF_CHECK(n == 0, "reported again without a new edge (%#llx): EPOLLET or EPOLLONESHOT lost",
             n > 0 ? (unsigned long long)got[0].data.u64 : 0);
  CONF_CHECK(epoll_wait(outer, got, 8, 0) == 0, "outer epoll: still ready with nothing pending inside");
  poke(et);
  n = epoll_wait(ep, got, 8, 0);
  CONF_CHECK(n == 1 && got[0].data.u64 == C_ET, "edge-triggered entry: a new edge gives %d events", n);
  struct epoll_event e = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = C_DIS};
  CONF_CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, dis, &e) == 0, "EPOLL_CTL_MOD: %s", strerror(errno));
  n = epoll_wait(ep, got, 8, 0);
  CONF_CHECK(n == 1 && got[0].data.u64 == C_DIS, "re-armed one-shot entry: %d events", n);
  CONF_CHECK(epoll_wait(outer, got, 8, 0) == 0, "outer epoll: ready again");
  poke(et);
  CONF_CHECK(epoll_wait(outer, got, 8, 0) == 1 && got[0].data.u64 == C_NEST, "outer epoll: not woken by the inner");
  conf_pass();
}
