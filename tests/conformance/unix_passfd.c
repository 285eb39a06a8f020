/* An fd in flight: a memfd sent with SCM_RIGHTS and not yet received. */
#include <sys/mman.h>
#include <sys/socket.h>

#include "conf.h"

int main(void) {
  conf_init();
  int sp[2];
  CONF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "socketpair: %s", strerror(errno));
  int m = memfd_create("conf", 0);
  CONF_CHECK(m >= 0 && write(m, "in flight", 9) == 9, "memfd: %s", strerror(errno));
  char c = 'x';
  struct iovec iov = {&c, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = {0};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &m, sizeof(int));
  CONF_CHECK(sendmsg(sp[0], &mh, 0) == 1, "sendmsg: %s", strerror(errno));
  close(m);
  conf_ready();
  conf_wait(NULL);
  memset(ctl, 0, sizeof ctl);
  mh.msg_controllen = sizeof ctl;
  CONF_CHECK(recvmsg(sp[1], &mh, 0) == 1, "recvmsg: %s", strerror(errno));
  cm = CMSG_FIRSTHDR(&mh);
  CONF_CHECK(cm && cm->cmsg_type == SCM_RIGHTS, "no fd received");
  int got;
  memcpy(&got, CMSG_DATA(cm), sizeof(int));
  char buf[16] = {0};
  CONF_CHECK(pread(got, buf, sizeof buf, 0) == 9 && memcmp(buf, "in flight", 9) == 0, "memfd content lost");
  conf_pass();
}
