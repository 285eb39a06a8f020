/* Four threads, each counting in its own slot, go on counting. */
#include <pthread.h>

#include "conf.h"

static volatile unsigned long counts[4];

static void* count(void* arg) {
  volatile unsigned long* c = arg;
  for (;;) {
    ++*c;
    usleep(1000);
  }
  return NULL;
}

int main(void) {
  conf_init();
  pthread_t t[4];
  for (int i = 0; i < 4; ++i)
    CONF_CHECK(pthread_create(&t[i], NULL, count, (void*)&counts[i]) == 0, "pthread_create");
  conf_ready();
  conf_wait(NULL);
  unsigned long before[4];
  for (int i = 0; i < 4; ++i) before[i] = counts[i];
  usleep(100000);
  for (int i = 0; i < 4; ++i) CONF_CHECK(counts[i] > before[i], "thread %d stopped", i);
  conf_pass();
}
