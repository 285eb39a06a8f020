/* Credentials of children: one switched to 65534 (setresuid/setresgid, saved ids 1000/1001, supplementary groups),
 * one still root with every capability dropped but CAP_NET_BIND_SERVICE (capset). Each reads its /proc/self/status
 * ids, groups and capability sets after the move: the same as before. */
#include <grp.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "conf.h"

/* Answers each byte received on `sock` with its Uid/Gid/Groups/Cap* lines of /proc/self/status. */
static void serve(int sock) {
  char c, buf[4096], out[1024];
  while (read(sock, &c, 1) == 1) {
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    size_t len = 0;
    buf[n > 0 ? n : 0] = 0;
    for (char* l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
      if (!strncmp(l, "Uid:", 4) || !strncmp(l, "Gid:", 4) || !strncmp(l, "Groups:", 7) || !strncmp(l, "Cap", 3))
        len += (size_t)snprintf(out + len, sizeof out - len, "%s\n", l);
    if (write(sock, out, len) != (ssize_t)len) _exit(1);
  }
  _exit(0);
}

static int child(int kind) {
  int sv[2];
  CONF_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0, "socketpair: %s", strerror(errno));
  pid_t pid = fork();
  CONF_CHECK(pid >= 0, "fork: %s", strerror(errno));
  if (pid > 0) return close(sv[1]), sv[0];
  close(sv[0]);
  if (kind == 0) {
    gid_t groups[3] = {100, 2000, 65534};
    if (setgroups(3, groups) || setresgid(65534, 65534, 1001) || setresuid(65534, 65534, 1000)) _exit(1);
  } else {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    d[0].effective = d[0].permitted = d[0].inheritable = 1u << CAP_NET_BIND_SERVICE;
    if (syscall(SYS_capset, &h, d)) _exit(1);
  }
  serve(sv[1]);
  return -1;
}

static void ask(int sock, char* out, size_t size) {
  ssize_t n = write(sock, "?", 1) == 1 ? read(sock, out, size - 1) : -1;
  out[n > 0 ? n : 0] = 0;
}

/* Fails naming the first line of `before` whose field (e.g. "CapEff:") differs in `after`. */
static void compare(const char* who, char* before, char* after) {
  char* lines[32];
  int n = 0;
  for (char* l = strtok(after, "\n"); l && n < 32; l = strtok(NULL, "\n")) lines[n++] = l;
  for (char* l = strtok(before, "\n"); l; l = strtok(NULL, "\n")) {
    const char* now = "(missing)";
    for (int i = 0; i < n; ++i)
      if (!strncmp(lines[i], l, strcspn(l, ":") + 1)) now = lines[i];
    CONF_CHECK(!strcmp(now, l), "%s child: '%s' is now '%s'", who, l, now);
  }
}

int main(void) {
  conf_init();
  const int socks[2] = {child(0), child(1)};
  const char* expect[2][3] = {
      {"Uid:\t65534\t65534\t1000\t65534\n", "Gid:\t65534\t65534\t1001\t65534\n", "Groups:\t100 2000 65534"},
      {"Uid:\t0\t0\t0\t0\n", "CapEff:\t0000000000000400\n", "CapPrm:\t0000000000000400\n"}};
  char before[2][1024], after[1024];
  for (int k = 0; k < 2; ++k) {
    ask(socks[k], before[k], sizeof before[k]);
    for (int i = 0; i < 3; ++i)
      CONF_CHECK(strstr(before[k], expect[k][i]), "child %d: setup failed, no '%s' in:\n%s", k, expect[k][i],
                 before[k]);
  }
  conf_ready();
  conf_wait(NULL);
  for (int k = 0; k < 2; ++k) {
    ask(socks[k], after, sizeof after);
    compare(k ? "capability" : "uid 65534", before[k], after);
  }
  conf_pass();
}
