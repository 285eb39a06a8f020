/* An io_uring instance (raw syscalls, no liburing) with a NOP's completion
 * unread in its CQ ring; after the move the completion is there and a new
 * NOP completes (expected to be refused). */
#include <linux/io_uring.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "conf.h"

#define COOKIE 0xfeedfacecafebeefull

static struct io_uring_params par;
static unsigned char *sq, *cq;
static struct io_uring_sqe* sqes;
static int ring;

#define SQ(field) ((unsigned*)(sq + par.sq_off.field))
#define CQ(field) ((unsigned*)(cq + par.cq_off.field))

static int submit_nop(uint64_t cookie) {
  const unsigned tail = *SQ(tail), i = tail & *SQ(ring_mask);
  memset(&sqes[i], 0, sizeof sqes[i]);
  sqes[i].opcode = IORING_OP_NOP;
  sqes[i].user_data = cookie;
  SQ(array)[i] = i;
  __atomic_store_n(SQ(tail), tail + 1, __ATOMIC_RELEASE);
  return (int)syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
}

/* Takes one completion: 1 if there was one (its cookie and result out), else 0. */
static int reap(uint64_t* cookie, int* res) {
  const unsigned head = *CQ(head);
  if (head == __atomic_load_n(CQ(tail), __ATOMIC_ACQUIRE)) return 0;
  const struct io_uring_cqe* c = (struct io_uring_cqe*)(cq + par.cq_off.cqes) + (head & *CQ(ring_mask));
  *cookie = c->user_data;
  *res = c->res;
  __atomic_store_n(CQ(head), head + 1, __ATOMIC_RELEASE);
  return 1;
}

int main(void) {
  conf_init();
  ring = (int)syscall(SYS_io_uring_setup, 8, &par);
  CONF_CHECK(ring >= 0, "io_uring_setup: %s", strerror(errno));
  sq = mmap(NULL, par.sq_off.array + par.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE, MAP_SHARED, ring,
            IORING_OFF_SQ_RING);
  cq = mmap(NULL, par.cq_off.cqes + par.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED,
            ring, IORING_OFF_CQ_RING);
  sqes = mmap(NULL, par.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED, ring,
              IORING_OFF_SQES);
  CONF_CHECK(sq != MAP_FAILED && cq != MAP_FAILED && sqes != MAP_FAILED, "mmap: %s", strerror(errno));
  CONF_CHECK(submit_nop(COOKIE) == 1, "io_uring_enter: %s", strerror(errno));
  CONF_CHECK(*CQ(tail) - *CQ(head) == 1, "the NOP did not complete");
  conf_ready();
  conf_wait(NULL);
  uint64_t cookie = 0;
  int res = -1;
  const unsigned pending = *CQ(tail) - *CQ(head);
  CONF_CHECK(pending == 1, "%u completions in the CQ ring, want 1", pending);
  CONF_CHECK(reap(&cookie, &res) && cookie == COOKIE && res == 0, "completion: cookie %#llx, res %d",
             (unsigned long long)cookie, res);
  CONF_CHECK(submit_nop(2) == 1, "io_uring_enter after the move: %s", strerror(errno));
  CONF_CHECK(reap(&cookie, &res) && cookie == 2 && res == 0, "new NOP: cookie %#llx, res %d",
             (unsigned long long)cookie, res);
  CONF_CHECK(!reap(&cookie, &res), "an extra completion (cookie %#llx)", (unsigned long long)cookie);
  conf_pass();
}
