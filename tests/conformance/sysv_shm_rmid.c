/* System V shared memory: a segment IPC_RMID'd while attached (content kept, still shared with a child forked after
 * the move, gone once detached), and a segment with content that no one has attached (IPC_STAT size, attach count,
 * mode; content through a new shmat after the move). */
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>

#include "conf.h"

#define SIZE_A (1 << 20)
#define SIZE_B 300001 /* not a page multiple: IPC_STAT gives it exactly */
#define KEY_B 0x434f4e46

static void check(const unsigned char* p, size_t n, unsigned seed, const char* what) {
  for (size_t i = 0; i < n; ++i) CONF_CHECK(p[i] == conf_byte(seed, i), "%s: byte %zu differs", what, i);
}

int main(void) {
  conf_init();
  const int a = shmget(IPC_PRIVATE, SIZE_A, IPC_CREAT | 0600), b = shmget(KEY_B, SIZE_B, IPC_CREAT | IPC_EXCL | 0640);
  CONF_CHECK(a >= 0 && b >= 0, "shmget: %s", strerror(errno));
  unsigned char *pa = shmat(a, NULL, 0), *pb = shmat(b, NULL, 0);
  CONF_CHECK(pa != (void*)-1 && pb != (void*)-1, "shmat: %s", strerror(errno));
  conf_fill(pa, SIZE_A, 21, 0);
  conf_fill(pb, SIZE_B, 22, 0);
  CONF_CHECK(shmdt(pb) == 0 && shmctl(a, IPC_RMID, NULL) == 0, "shmdt/IPC_RMID: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct shmid_ds ds;
  CONF_CHECK(shmctl(a, IPC_STAT, &ds) == 0, "the removed, attached segment %d is gone: %s", a, strerror(errno));
  CONF_CHECK(ds.shm_segsz == SIZE_A && ds.shm_nattch == 1 && (ds.shm_perm.mode & SHM_DEST),
             "removed segment: %zu bytes, %lu attached, mode %#o", ds.shm_segsz, (unsigned long)ds.shm_nattch,
             ds.shm_perm.mode);
  check(pa, SIZE_A, 21, "removed segment");
  const pid_t child = fork();
  if (child == 0) {
    conf_fill(pa, 4096, 23, 0);
    _exit(0);
  }
  CONF_CHECK(child > 0 && waitpid(child, NULL, 0) == child, "fork: %s", strerror(errno));
  check(pa, 4096, 23, "removed segment, not shared with a child");
  CONF_CHECK(shmdt(pa) == 0, "shmdt: %s", strerror(errno));
  CONF_CHECK(shmctl(a, IPC_STAT, &ds) == -1 && errno == EINVAL, "the removed segment outlived its last detach");
  CONF_CHECK(shmget(KEY_B, 0, 0) == b, "key %#x gives %d, not segment %d", KEY_B, shmget(KEY_B, 0, 0), b);
  CONF_CHECK(shmctl(b, IPC_STAT, &ds) == 0, "unattached segment %d is gone: %s", b, strerror(errno));
  CONF_CHECK(ds.shm_segsz == SIZE_B && ds.shm_nattch == 0 && (ds.shm_perm.mode & 0777) == 0640,
             "unattached segment: %zu bytes, %lu attached, mode %#o", ds.shm_segsz, (unsigned long)ds.shm_nattch,
             ds.shm_perm.mode);
  pb = shmat(b, NULL, SHM_RDONLY);
  CONF_CHECK(pb != (void*)-1, "shmat: %s", strerror(errno));
  check(pb, SIZE_B, 22, "unattached segment");
  conf_pass();
}
