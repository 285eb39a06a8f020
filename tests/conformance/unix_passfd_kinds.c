/* Three fds in flight over a Unix socketpair (SCM_RIGHTS, not yet received,
 * the sender's copies closed): a pipe read end with data in the pipe, a
 * connected Unix socket whose peer the program keeps, and a file in /tmp at a
 * nonzero offset. After the move each arrives and works: data, peer, offset. */
#include <sys/socket.h>
#include <sys/stat.h>

#include "conf.h"

static const char path[] = "/tmp/conf_passfd_kinds.dat";

static void pass(int sock, char tag, int fd) {
  struct iovec iov = {&tag, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  CONF_CHECK(sendmsg(sock, &mh, 0) == 1, "sendmsg: %s", strerror(errno));
  close(fd);
}

static int take(int sock, char tag) {
  char c = 0, ctl[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&c, 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  CONF_CHECK(recvmsg(sock, &mh, MSG_DONTWAIT) == 1, "message '%c' lost: %s", tag, strerror(errno));
  CONF_CHECK(c == tag, "message '%c' lost: '%c' came instead", tag, c);
  struct cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  CONF_CHECK(cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && !(mh.msg_flags & MSG_CTRUNC),
             "message '%c' arrived without its fd", tag);
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  return fd;
}

int main(void) {
  conf_init();
  int sp[2], pp[2], up[2];
  CONF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, up) == 0,
             "socketpair: %s", strerror(errno));
  CONF_CHECK(pipe(pp) == 0 && write(pp[1], "through the pipe", 16) == 16, "pipe: %s", strerror(errno));
  CONF_CHECK(send(up[0], "to the peer", 11, 0) == 11 && send(up[1], "to the fd", 9, 0) == 9, "send: %s",
             strerror(errno));
  unsigned char data[8192], b[8192];
  conf_fill(data, sizeof data, 81, 0);
  int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CONF_CHECK(f >= 0 && write(f, data, sizeof data) == (ssize_t)sizeof data && lseek(f, 5000, SEEK_SET) == 5000,
             "file: %s", strerror(errno));
  pass(sp[0], 'p', pp[0]);
  pass(sp[0], 'u', up[0]);
  pass(sp[0], 'f', f);
  conf_ready();
  conf_wait(NULL);
  int p = take(sp[1], 'p');
  CONF_CHECK(read(p, b, sizeof b) == 16 && memcmp(b, "through the pipe", 16) == 0, "data queued in the pipe lost");
  CONF_CHECK(write(pp[1], "more", 4) == 4 && read(p, b, sizeof b) == 4 && memcmp(b, "more", 4) == 0,
             "received pipe end is not the kept write end's pipe");
  int u = take(sp[1], 'u');
  CONF_CHECK(recv(u, b, sizeof b, MSG_DONTWAIT) == 9 && memcmp(b, "to the fd", 9) == 0,
             "data queued to the socket lost");
  CONF_CHECK(recv(up[1], b, sizeof b, MSG_DONTWAIT) == 11 && memcmp(b, "to the peer", 11) == 0,
             "data queued to the kept peer lost");
  CONF_CHECK(send(u, "ping", 4, 0) == 4 && recv(up[1], b, sizeof b, MSG_DONTWAIT) == 4 && memcmp(b, "ping", 4) == 0,
             "received socket no longer connected to the kept peer");
  int g = take(sp[1], 'f');
  struct stat st1, st2;
  CONF_CHECK(fstat(g, &st1) == 0 && stat(path, &st2) == 0 && st1.st_ino == st2.st_ino && st1.st_dev == st2.st_dev,
             "received fd is not %s", path);
  off_t off = lseek(g, 0, SEEK_CUR);
  CONF_CHECK(off == 5000, "file offset %lld, was 5000", (long long)off);
  CONF_CHECK(read(g, b, sizeof b) == (ssize_t)sizeof data - 5000 && memcmp(b, data + 5000, sizeof data - 5000) == 0,
             "file content after the offset differs");
  CONF_CHECK((fcntl(g, F_GETFL) & O_ACCMODE) == O_RDWR, "file lost its O_RDWR mode");
  CONF_CHECK(recv(sp[1], b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "an extra message appeared");
  unlink(path);
  conf_pass();
}
