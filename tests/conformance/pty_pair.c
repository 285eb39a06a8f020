/* A pseudo-terminal pair with bytes queued from master to slave. */
#include <pty.h>
#include <termios.h>

#include "conf.h"

int main(void) {
  conf_init();
  int master, slave;
  CONF_CHECK(openpty(&master, &slave, NULL, NULL, NULL) == 0, "openpty: %s", strerror(errno));
  struct termios t;
  tcgetattr(slave, &t);
  cfmakeraw(&t);
  tcsetattr(slave, TCSANOW, &t);
  CONF_CHECK(write(master, "through the pty", 15) == 15, "write: %s", strerror(errno));
  conf_ready();
  conf_wait(NULL);
  char b[32] = {0};
  CONF_CHECK(read(slave, b, sizeof b) == 15 && memcmp(b, "through the pty", 15) == 0, "pty data lost");
  conf_pass();
}
