/* A POSIX message queue with two messages of different priorities. CRIU
 * cannot dump one: a migration is refused, naming the queue. */
#include <mqueue.h>

#include "conf.h"

int main(void) {
  conf_init();
  mq_unlink("/conf-mq");
  struct mq_attr at = {.mq_maxmsg = 4, .mq_msgsize = 64};
  mqd_t q = mq_open("/conf-mq", O_CREAT | O_RDWR | O_NONBLOCK, 0600, &at);
  CONF_CHECK(q != (mqd_t)-1, "mq_open: %s", strerror(errno));
  CONF_CHECK(mq_send(q, "low", 4, 1) == 0 && mq_send(q, "high", 5, 9) == 0, "mq_send: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  char buf[64];
  unsigned prio = 0;
  CONF_CHECK(mq_receive(q, buf, sizeof buf, &prio) == 5 && prio == 9 && strcmp(buf, "high") == 0, "mq: high lost");
  CONF_CHECK(mq_receive(q, buf, sizeof buf, &prio) == 4 && prio == 1 && strcmp(buf, "low") == 0, "mq: low lost");
  conf_pass();
}
