// A hostile container's workload: in /var/data it keeps swapping a
// directory and a symbolic link to a host directory (renameat2 with
// RENAME_EXCHANGE, every 200 us), so that an agent that follows links or
// opens paths by name while it copies the tree ends up reading or writing
// the host directory. The trust-boundary test migrates it again and again
// and checks the host directory and the container's tree.
//
//   toggler HOST_DIR      (runs until killed)
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: toggler HOST_DIR\n");
    return 2;
  }
  if (::mkdir("/var/data", 0755) != 0 && errno != EEXIST) return 1;
  if (::chdir("/var/data") != 0) return 1;
  ::mkdir("d", 0755);
  int fd = ::open("d/inside", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::write(fd, "container file\n", 15) != 15) return 1;
  ::close(fd);
  ::unlink("l");
  if (::symlink(argv[1], "l") != 0) return 1;
  for (;;) {
    if (::syscall(SYS_renameat2, AT_FDCWD, "d", AT_FDCWD, "l", RENAME_EXCHANGE) != 0) {
      fprintf(stderr, "toggler: renameat2: %s\n", strerror(errno));
      return 1;
    }
    ::usleep(200);
  }
}
