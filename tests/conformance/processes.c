/* A zombie keeps its exit code, a child in a session of its own keeps its
 * session and process group, a child of another process group its group. */
#include <sys/wait.h>

#include "conf.h"

int main(void) {
  conf_init();
  pid_t zombie = fork();
  if (zombie == 0) _exit(42);
  pid_t leader = fork();
  if (leader == 0) {
    setsid();
    for (;;) pause();
  }
  pid_t member = fork();
  if (member == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  setpgid(member, member);
  usleep(100000);
  const pid_t leaderSid = getsid(leader), memberPgid = getpgid(member);
  CONF_CHECK(leaderSid == leader && memberPgid == member, "setup: sid %d pgid %d", leaderSid, memberPgid);
  conf_ready();
  conf_wait(NULL);
  CONF_CHECK(getsid(leader) == leader, "session of %d is %d", leader, getsid(leader));
  CONF_CHECK(getpgid(member) == member, "process group of %d is %d", member, getpgid(member));
  int st = 0;
  CONF_CHECK(waitpid(zombie, &st, WNOHANG) == zombie && WIFEXITED(st) && WEXITSTATUS(st) == 42,
             "the zombie lost its exit code");
  kill(leader, SIGKILL);
  kill(member, SIGKILL);
  conf_pass();
}
