/* Two stacked seccomp BPF filters (no_new_privs): getppid() fails with EPERM, getpgid() with EACCES. After the move
 * both still apply, here and in a child forked then, and other system calls still work. */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "conf.h"

/* Installs a filter failing system call `nr` with `err` (other architectures: killed). */
static void deny(int nr, int err) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  CONF_CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "seccomp: %s", strerror(errno));
}

/* NULL when both filters apply, else what does not. */
static const char* denied(void) {
  if (syscall(SYS_getppid) != -1 || errno != EPERM) return "getppid() is allowed again";
  if (syscall(SYS_getpgid, 0) != -1 || errno != EACCES) return "getpgid() is allowed again";
  return syscall(SYS_getpid) > 0 ? NULL : "getpid() is denied";
}

int main(void) {
  conf_init();
  CONF_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %s", strerror(errno));
  deny(SYS_getppid, EPERM);
  deny(SYS_getpgid, EACCES);
  const char* why = denied();
  CONF_CHECK(!why, "setup: %s", why);
  conf_ready();
  conf_wait(NULL);
  why = denied();
  CONF_CHECK(!why, "%s", why);
  int v = prctl(PR_GET_SECCOMP);
  CONF_CHECK(v == SECCOMP_MODE_FILTER, "seccomp mode %d", v);
  pid_t pid = fork();
  if (pid == 0) _exit(denied() ? 1 : 0);
  int st = 0;
  CONF_CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork: %s", strerror(errno));
  CONF_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a child forked after the move is not filtered (status %#x)", st);
  conf_pass();
}
