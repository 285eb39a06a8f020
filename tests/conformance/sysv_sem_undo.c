/* A System V semaphore set: a live child holds a SEM_UNDO adjustment (-2 on semaphore 0: 5 -> 3) across the move;
 * when it exits afterwards the kernel undoes it (back to 5). Semaphore 1 keeps its value and sempid (this process),
 * semaphore 0 its sempid (the child). */
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>

#include "conf.h"

int main(void) {
  conf_init();
  const int sem = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
  CONF_CHECK(sem >= 0, "semget: %s", strerror(errno));
  struct sembuf init[2] = {{0, 5, 0}, {1, 9, 0}};
  CONF_CHECK(semop(sem, init, 2) == 0, "semop: %s", strerror(errno));
  int cmd[2];
  CONF_CHECK(pipe(cmd) == 0, "pipe: %s", strerror(errno));
  const pid_t child = fork();
  CONF_CHECK(child >= 0, "fork: %s", strerror(errno));
  if (child == 0) {
    struct sembuf take = {0, -2, SEM_UNDO};
    char c;
    if (semop(sem, &take, 1) != 0) _exit(1);
    _exit(read(cmd[0], &c, 1) == 1 ? 0 : 2); /* until told, after the move */
  }
  for (int i = 0; i < 100 && semctl(sem, 0, GETVAL) != 3; ++i) usleep(1000);
  CONF_CHECK(semctl(sem, 0, GETVAL) == 3 && semctl(sem, 0, GETPID) == child, "the child's semop did not happen");
  conf_ready();
  conf_wait(NULL);
  int v = semctl(sem, 0, GETVAL);
  CONF_CHECK(v == 3, "semaphore 0 is %d, not 3 (5, -2 held by the child)", v);
  CONF_CHECK((v = semctl(sem, 1, GETVAL)) == 9, "semaphore 1 is %d, not 9", v);
  CONF_CHECK((v = semctl(sem, 0, GETPID)) == child, "sempid of semaphore 0 is %d, not %d (the child)", v, (int)child);
  CONF_CHECK((v = semctl(sem, 1, GETPID)) == getpid(), "sempid of semaphore 1 is %d, not %d", v, (int)getpid());
  int st = 0;
  CONF_CHECK(write(cmd[1], "x", 1) == 1 && waitpid(child, &st, 0) == child, "the child is gone: %s", strerror(errno));
  CONF_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child ended with status %#x", st);
  CONF_CHECK((v = semctl(sem, 0, GETVAL)) == 5, "semaphore 0 is %d after the child exited: its SEM_UNDO (+2) lost", v);
  conf_pass();
}
