/* What a process carries besides memory: working directory, umask, a
 * resource limit, its nice value, its name. */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "conf.h"

int main(void) {
  conf_init();
  mkdir("/tmp/conf-cwd", 0700);
  CONF_CHECK(chdir("/tmp/conf-cwd") == 0, "chdir: %s", strerror(errno));
  umask(027);
  struct rlimit rl = {200, 300};
  CONF_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
  CONF_CHECK(nice(5) != -1 || errno == 0, "nice: %s", strerror(errno));
  prctl(PR_SET_NAME, "conf-renamed");
  conf_ready();
  conf_wait(NULL);
  char cwd[256];
  CONF_CHECK(getcwd(cwd, sizeof cwd) && strcmp(cwd, "/tmp/conf-cwd") == 0, "cwd %s", cwd);
  mode_t m = umask(0);
  CONF_CHECK(m == 027, "umask %o", m);
  CONF_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 200 && rl.rlim_max == 300, "rlimit %lu/%lu",
             (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
  errno = 0;
  int n = getpriority(PRIO_PROCESS, 0);
  CONF_CHECK(n == 5, "nice %d", n);
  char name[16] = {0};
  prctl(PR_GET_NAME, name);
  CONF_CHECK(strcmp(name, "conf-renamed") == 0, "name %s", name);
  conf_pass();
}
