/* NETLINK_ROUTE sockets: one bound with its own nl_pid, used for an
 * RTM_GETLINK dump before and after the move (it lists lo, replies address
 * that nl_pid); one subscribed to RTMGRP_LINK keeps its membership and gets
 * the RTM_NEWLINK event of a change made to lo after the move. */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include "conf.h"

static unsigned seq = 100;

/* Sends a request; returns 1 if a reply (all of a dump, or the ack) names lo. */
static int request(int fd, unsigned pid, int type, int flags, const void* body, size_t blen) {
  struct {
    struct nlmsghdr h;
    char body[64];
  } rq;
  memset(&rq, 0, sizeof rq);
  rq.h.nlmsg_len = (unsigned)NLMSG_LENGTH(blen);
  rq.h.nlmsg_type = (unsigned short)type;
  rq.h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | flags);
  rq.h.nlmsg_seq = ++seq;
  memcpy(rq.body, body, blen);
  CONF_CHECK(send(fd, &rq, rq.h.nlmsg_len, 0) == (ssize_t)rq.h.nlmsg_len, "netlink send: %s", strerror(errno));
  static char buf[32768];
  int lo = 0;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    CONF_CHECK(poll(&p, 1, 2000) == 1, "no netlink reply to request %u", seq);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    CONF_CHECK(n > 0, "netlink recv: %s", strerror(errno));
    for (struct nlmsghdr* h = (struct nlmsghdr*)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      CONF_CHECK(h->nlmsg_seq == seq && h->nlmsg_pid == pid, "reply seq %u pid %u, want %u %u", h->nlmsg_seq,
                 h->nlmsg_pid, seq, pid);
      if (h->nlmsg_type == NLMSG_DONE) return lo;
      if (h->nlmsg_type == NLMSG_ERROR) {
        int err = ((struct nlmsgerr*)NLMSG_DATA(h))->error;
        CONF_CHECK(err == 0, "netlink request %d: %s", type, strerror(-err));
        return lo;
      }
      if (h->nlmsg_type != RTM_NEWLINK) continue;
      struct ifinfomsg* ifi = NLMSG_DATA(h);
      int len = (int)IFLA_PAYLOAD(h);
      for (struct rtattr* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == IFLA_IFNAME && strcmp(RTA_DATA(a), "lo") == 0) lo = 1;
    }
  }
}

static int dump_lists_lo(int fd, unsigned pid) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  return request(fd, pid, RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof ifi);
}

int main(void) {
  conf_init();
  const unsigned pid = 0x434f4e46; /* our own choice, not the process id */
  int q = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int m = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  struct sockaddr_nl qa = {.nl_family = AF_NETLINK, .nl_pid = pid},
                     ma = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
  CONF_CHECK(q >= 0 && bind(q, (struct sockaddr*)&qa, sizeof qa) == 0, "bind nl_pid: %s", strerror(errno));
  CONF_CHECK(m >= 0 && bind(m, (struct sockaddr*)&ma, sizeof ma) == 0, "bind RTMGRP_LINK: %s", strerror(errno));
  CONF_CHECK(dump_lists_lo(q, pid), "RTM_GETLINK dump does not list lo");
  conf_ready();
  conf_wait(NULL);
  struct sockaddr_nl g;
  socklen_t gl = sizeof g;
  CONF_CHECK(getsockname(q, (struct sockaddr*)&g, &gl) == 0 && g.nl_pid == pid, "bound socket's nl_pid %u, was %u",
             g.nl_pid, pid);
  CONF_CHECK(dump_lists_lo(q, pid), "RTM_GETLINK dump after the move does not list lo");
  unsigned groups[4] = {0};
  socklen_t ol = sizeof groups;
  CONF_CHECK(getsockopt(m, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &ol) == 0, "NETLINK_LIST_MEMBERSHIPS: %s",
             strerror(errno));
  CONF_CHECK(groups[0] == RTMGRP_LINK && !groups[1] && !groups[2] && !groups[3],
             "subscription lost: groups %#x (was RTMGRP_LINK)", groups[0]);
  char drain[8192];
  while (recv(m, drain, sizeof drain, 0) > 0) {
  }
  struct {
    struct ifinfomsg ifi;
    struct rtattr a;
    char alias[16];
  } set = {{.ifi_family = AF_UNSPEC, .ifi_index = (int)if_nametoindex("lo")},
           {RTA_LENGTH(sizeof "conf alias"), IFLA_IFALIAS},
           "conf alias"};
  request(q, pid, RTM_NEWLINK, NLM_F_ACK, &set, sizeof set);
  struct pollfd p = {m, POLLIN, 0};
  CONF_CHECK(poll(&p, 1, 1000) == 1, "subscribed socket gets no RTM_NEWLINK event");
  ssize_t n = recv(m, drain, sizeof drain, 0);
  CONF_CHECK(n > 0 && ((struct nlmsghdr*)drain)->nlmsg_type == RTM_NEWLINK, "subscribed socket: no RTM_NEWLINK event");
  conf_pass();
}
