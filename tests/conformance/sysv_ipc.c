/* System V IPC of the container's IPC namespace: a shared memory segment
 * (attached, with content), a semaphore set (values), a message queue
 * (messages of two types). */
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#include "conf.h"

struct msg {
  long type;
  char text[32];
};

int main(void) {
  conf_init();
  int shm = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
  CONF_CHECK(shm >= 0, "shmget: %s", strerror(errno));
  unsigned char* p = shmat(shm, NULL, 0);
  CONF_CHECK(p != (void*)-1, "shmat: %s", strerror(errno));
  conf_fill(p, 1 << 20, 5, 0);
  int sem = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
  CONF_CHECK(sem >= 0, "semget: %s", strerror(errno));
  unsigned short vals[3] = {7, 0, 42};
  CONF_CHECK(semctl(sem, 0, SETALL, vals) == 0, "semctl: %s", strerror(errno));
  int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  CONF_CHECK(q >= 0, "msgget: %s", strerror(errno));
  struct msg m1 = {1, "first"}, m2 = {2, "second"};
  CONF_CHECK(msgsnd(q, &m1, sizeof m1.text, 0) == 0 && msgsnd(q, &m2, sizeof m2.text, 0) == 0, "msgsnd: %s",
             strerror(errno));
  conf_ready();
  conf_wait(NULL);
  for (size_t i = 0; i < (1 << 20); ++i) CONF_CHECK(p[i] == conf_byte(5, i), "shm byte %zu differs", i);
  unsigned short now[3] = {0};
  CONF_CHECK(semctl(sem, 0, GETALL, now) == 0 && now[0] == 7 && now[1] == 0 && now[2] == 42, "semaphores %u %u %u",
             now[0], now[1], now[2]);
  struct msg r;
  CONF_CHECK(msgrcv(q, &r, sizeof r.text, 2, IPC_NOWAIT) > 0 && strcmp(r.text, "second") == 0, "message 2 lost");
  CONF_CHECK(msgrcv(q, &r, sizeof r.text, 0, IPC_NOWAIT) > 0 && strcmp(r.text, "first") == 0, "message 1 lost");
  conf_pass();
}
