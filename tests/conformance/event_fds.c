/* eventfd (a count), timerfd (periodic), signalfd (a pending signal) and an
 * epoll set over them. */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "conf.h"

int main(void) {
  conf_init();
  int ev = eventfd(5, EFD_NONBLOCK);
  int tf = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct itimerspec its = {{0, 50000000}, {0, 50000000}};
  CONF_CHECK(ev >= 0 && tf >= 0 && timerfd_settime(tf, 0, &its, NULL) == 0, "eventfd/timerfd: %s", strerror(errno));
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  sigprocmask(SIG_BLOCK, &s, NULL);
  int sf = signalfd(-1, &s, SFD_NONBLOCK);
  CONF_CHECK(sf >= 0 && raise(SIGUSR1) == 0, "signalfd: %s", strerror(errno));
  int ep = epoll_create1(0);
  struct epoll_event e = {.events = EPOLLIN, .data.u32 = 77};
  CONF_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == 0, "epoll_ctl: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct epoll_event got;
  CONF_CHECK(epoll_wait(ep, &got, 1, 1000) == 1 && got.data.u32 == 77, "epoll lost its eventfd");
  uint64_t v = 0;
  CONF_CHECK(read(ev, &v, 8) == 8 && v == 5, "eventfd count %llu", (unsigned long long)v);
  usleep(120000);
  CONF_CHECK(read(tf, &v, 8) == 8 && v >= 1, "timerfd does not fire");
  struct signalfd_siginfo si;
  CONF_CHECK(read(sf, &si, sizeof si) == (ssize_t)sizeof si && si.ssi_signo == SIGUSR1, "pending SIGUSR1 lost");
  conf_pass();
}
