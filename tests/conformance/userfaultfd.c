/* A userfaultfd (UFFD_API) registered on a 64 KiB region in missing mode, one
 * page filled with UFFDIO_COPY, no events pending; after the move a thread's
 * fault on another page is reported and resolved (expected to be refused). */
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "conf.h"

#define PG 4096ul
#define SZ (16 * PG)
/* Seeds apart above bit 13: conf_byte streams of nearby small seeds are nearly identical. */
#define S(n) ((unsigned)(n) << 13)

static unsigned char* region;
/* Set after the copy with a release store: a plain (even volatile) store may be
 * moved before the copy by the compiler (gcc -O2 put it before `rep movsq`),
 * which made "did not wait" fail without any migration. */
static int toucher_done;
static unsigned char seen[PG];

static void* toucher(void* arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  memcpy(seen, region + 5 * PG, PG);
  __atomic_store_n(&toucher_done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static int copy_page(int uffd, size_t pg, unsigned seed) {
  static unsigned char src[PG] __attribute__((aligned(4096)));
  conf_fill(src, PG, seed, pg * PG);
  struct uffdio_copy c = {.dst = (uintptr_t)(region + pg * PG), .src = (uintptr_t)src, .len = PG};
  return ioctl(uffd, UFFDIO_COPY, &c);
}

int main(void) {
  conf_init();
  int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  CONF_CHECK(uffd >= 0, "userfaultfd: %s", strerror(errno));
  struct uffdio_api api = {.api = UFFD_API};
  CONF_CHECK(ioctl(uffd, UFFDIO_API, &api) == 0, "UFFDIO_API: %s", strerror(errno));
  region = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CONF_CHECK(region != MAP_FAILED, "mmap: %s", strerror(errno));
  struct uffdio_register reg = {.range = {.start = (uintptr_t)region, .len = SZ}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  CONF_CHECK(ioctl(uffd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER: %s", strerror(errno));
  CONF_CHECK(copy_page(uffd, 0, S(70)) == 0, "UFFDIO_COPY: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  struct uffd_msg msg;
  CONF_CHECK(read(uffd, &msg, sizeof msg) < 0 && errno == EAGAIN, "an event pending after the move (%s)",
             strerror(errno));
  for (size_t i = 0; i < PG; ++i) CONF_CHECK(region[i] == conf_byte(S(70), i), "the copied page: byte %zu differs", i);
  pthread_t t;
  CONF_CHECK(pthread_create(&t, NULL, toucher, NULL) == 0, "pthread_create");
  struct pollfd p = {.fd = uffd, .events = POLLIN};
  CONF_CHECK(poll(&p, 1, 2000) == 1, "no fault reported: the registration is lost");
  CONF_CHECK(read(uffd, &msg, sizeof msg) == (ssize_t)sizeof msg, "read: %s", strerror(errno));
  CONF_CHECK(msg.event == UFFD_EVENT_PAGEFAULT && msg.arg.pagefault.address == (uintptr_t)(region + 5 * PG),
             "event %d at %#llx", msg.event, (unsigned long long)msg.arg.pagefault.address);
  CONF_CHECK(!__atomic_load_n(&toucher_done, __ATOMIC_ACQUIRE), "the faulting thread did not wait");
  CONF_CHECK(copy_page(uffd, 5, S(71)) == 0, "UFFDIO_COPY after the move: %s", strerror(errno));
  pthread_join(t, NULL);
  for (size_t i = 0; i < PG; ++i) CONF_CHECK(seen[i] == conf_byte(S(71), 5 * PG + i), "the resolved page differs");
  struct uffdio_range r = {.start = (uintptr_t)region, .len = SZ};
  CONF_CHECK(ioctl(uffd, UFFDIO_UNREGISTER, &r) == 0, "UFFDIO_UNREGISTER: %s", strerror(errno));
  conf_pass();
}
