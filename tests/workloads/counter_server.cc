// zdtm-style workload: keeps state in memory and serves it over TCP, so a
// test can tell a migrated process from a restarted one.
//
//   counter_server [--port 7000] [--mem MiB] [--tick-ms 10] [--fork] [--uffd] [--sandbox]
//
// Each TCP request is one line; the answer is one line:
//   GET  -> "counter=N pid=P start_ns=T mem_mib=M"   (pid as seen inside its pid namespace)
//   SUM  -> "sum=<FNV-1a of the memory blob>"
//   DIRTY <pct> -> rewrites pct% of the blob's pages, "ok"
// --fork: init forks the server and reaps children, so the server's pid is
//         not 1 (proves the pid survives migration).
// --uffd: holds a userfaultfd open, which CRIU refuses to dump (fault tests).
// --sandbox: the server runs under a seccomp filter of its own, as daemons
//         under systemd's SystemCallFilter= do (ptrace and personality
//         fail with EPERM, everything else is allowed).
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// The --sandbox filter; false when the kernel refuses it.
static bool sandbox() {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ptrace, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

static uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000 + uint64_t(ts.tv_nsec);
}

int main(int argc, char** argv) {
  int port = 7000;
  size_t memMib = 0;
  int tickMs = 10;
  bool doFork = false, uffd = false, sandboxed = false;
  const char* hold = nullptr;  // a device (or any file) kept open for good
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "counter_server: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") port = std::atoi(next());
    else if (a == "--mem") memMib = std::strtoull(next(), nullptr, 10);
    else if (a == "--tick-ms") tickMs = std::atoi(next());
    else if (a == "--fork") doFork = true;
    else if (a == "--uffd") uffd = true;
    else if (a == "--sandbox") sandboxed = true;
    else if (a == "--hold") hold = next();
    else {
      std::fprintf(stderr, "counter_server: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (doFork) {
    pid_t child = fork();
    if (child < 0) return 1;
    if (child > 0) {
      for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, 0);
        if (r == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        if (r < 0 && errno == ECHILD) return 0;
      }
    }
  }
  if (sandboxed && !sandbox()) {
    std::perror("counter_server: --sandbox");
    return 1;
  }
  int keepUffd = -1;
  if (uffd) keepUffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  (void)keepUffd;
  if (hold && open(hold, O_RDWR | O_CLOEXEC) < 0) {
    std::perror("counter_server: --hold");
    return 1;
  }

  size_t memBytes = memMib << 20;
  unsigned char* blob = nullptr;
  if (memBytes) {
    blob = static_cast<unsigned char*>(
        mmap(nullptr, memBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (blob == MAP_FAILED) return 1;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < memBytes; i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(blob + i, &x, 8);
    }
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(ls, 128) != 0) {
    std::perror("counter_server: listen");
    return 1;
  }
  uint64_t counter = 0;
  const uint64_t startNs = nowNs();
  uint64_t nextTick = nowNs() + uint64_t(tickMs) * 1000000;
  for (;;) {
    uint64_t now = nowNs();
    while (now >= nextTick) {
      ++counter;
      nextTick += uint64_t(tickMs) * 1000000;
    }
    pollfd p{ls, POLLIN, 0};
    int wait = static_cast<int>((nextTick - now) / 1000000) + 1;
    if (poll(&p, 1, wait) <= 0) continue;
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    char buf[256] = {0};
    ssize_t n = 0;
    pollfd cp{c, POLLIN, 0};
    if (poll(&cp, 1, 2000) > 0) n = read(c, buf, sizeof buf - 1);
    std::string req = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "GET";
    char out[256];
    if (req.rfind("SUM", 0) == 0) {
      uint64_t h = 1469598103934665603ULL;
      for (size_t i = 0; i < memBytes; ++i) h = (h ^ blob[i]) * 1099511628211ULL;
      std::snprintf(out, sizeof out, "sum=%016llx\n", static_cast<unsigned long long>(h));
    } else if (req.rfind("DIRTY", 0) == 0) {
      int pct = std::atoi(req.c_str() + 5);
      size_t pages = memBytes / 4096;
      for (size_t i = 0; i < pages * size_t(pct) / 100; ++i) blob[(i * 7919 % pages) * 4096] ^= 1;
      std::snprintf(out, sizeof out, "ok\n");
    } else {
      std::snprintf(out, sizeof out, "counter=%llu pid=%d start_ns=%llu mem_mib=%zu\n",
                    static_cast<unsigned long long>(counter), getpid(), static_cast<unsigned long long>(startNs),
                    memMib);
    }
    ssize_t w = write(c, out, std::strlen(out));
    (void)w;
    close(c);
  }
}
