// TCP stream with sequence numbers both ways, plus a UDP echo: proves that
// a connection survives a migration with no byte lost or duplicated.
//
// Server (inside a container):   seqstream --port P
//   TCP P, first line decides:
//     STREAM -> both sides send 8-byte sequence numbers 0,1,2,... until the
//               client closes; the server checks what it receives
//     STAT   -> "streams=N received=R errors=E eof=F" about the last stream
//     GET    -> "counter=N" (the test bed's readiness probe)
//   UDP P: answers "echo:<payload>".
// Client (client namespace):     seqstream --connect IP --port P --seconds S [--stall-ms T]
//   streams for S seconds, prints "progress t_ms= sent= recv= errors=" every
//   200 ms and "final sent= recv= errors= max_gap_ms= status=ok|stalled|broken"
//   (stalled: nothing received for T ms, default 6000).
// UDP probe:                     seqstream --udp IP --port P  -> "udp ok" or exit 1
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

uint64_t nowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

constexpr size_t kBlock = 512;  // records per write (4 KiB)

// Sends records until stop; paced to about 4 MB/s so a migration's frozen
// window holds a modest backlog. Returns false when the socket broke.
bool sendRecords(int fd, std::atomic<bool>& stop, std::atomic<uint64_t>& sent) {
  uint64_t buf[kBlock];
  while (!stop) {
    uint64_t base = sent.load();
    for (size_t i = 0; i < kBlock; ++i) buf[i] = base + i;
    const char* p = reinterpret_cast<const char*>(buf);
    size_t left = sizeof buf;
    while (left > 0) {
      // Never block for good: a dead peer must not keep stop from working.
      pollfd pf{fd, POLLOUT, 0};
      if (::poll(&pf, 1, 100) == 0) {
        if (stop) return true;
        continue;
      }
      ssize_t n = ::send(fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    sent += kBlock;
    ::usleep(1000);
  }
  return true;
}

// Checks a byte stream of records: each must be the previous one plus one.
struct Checker {
  uint64_t expect = 0;
  uint64_t errors = 0;
  unsigned char partial[8];
  size_t have = 0;
  void feed(const unsigned char* p, size_t n) {
    while (n > 0) {
      size_t take = std::min(n, 8 - have);
      std::memcpy(partial + have, p, take);
      have += take;
      p += take;
      n -= take;
      if (have == 8) {
        uint64_t v;
        std::memcpy(&v, partial, 8);
        if (v != expect) ++errors;
        expect = v + 1;
        have = 0;
      }
    }
  }
};

struct ServerStats {
  std::atomic<uint64_t> streams{0}, received{0}, errors{0}, eof{0};
};

std::string readLine(int fd) {
  std::string line;
  char c;
  while (line.size() < 64 && ::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

void serveConn(int fd, ServerStats& st) {
  std::string cmd = readLine(fd);
  char out[160];
  if (cmd == "STREAM") {
    st.streams++;
    st.received = 0;
    st.errors = 0;
    st.eof = 0;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sent{0};
    std::thread w([&] { sendRecords(fd, stop, sent); });
    Checker ck;
    unsigned char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (n == 0) st.eof = 1;
        break;
      }
      ck.feed(buf, static_cast<size_t>(n));
      st.received = ck.expect;
      st.errors = ck.errors;
    }
    stop = true;
    ::shutdown(fd, SHUT_RDWR);
    w.join();
  } else if (cmd == "STAT") {
    std::snprintf(out, sizeof out, "streams=%llu received=%llu errors=%llu eof=%llu\n",
                  static_cast<unsigned long long>(st.streams.load()),
                  static_cast<unsigned long long>(st.received.load()),
                  static_cast<unsigned long long>(st.errors.load()), static_cast<unsigned long long>(st.eof.load()));
    (void)!::write(fd, out, std::strlen(out));
  } else {
    std::snprintf(out, sizeof out, "counter=%llu pid=%d\n", static_cast<unsigned long long>(st.streams.load()),
                  getpid());
    (void)!::write(fd, out, std::strlen(out));
  }
  ::close(fd);
}

[[noreturn]] void server(int port) {
  static ServerStats st;
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(ls, 128) != 0) {
    std::perror("seqstream: listen");
    std::exit(1);
  }
  int us = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (::bind(us, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::perror("seqstream: udp bind");
    std::exit(1);
  }
  std::thread([us] {
    char buf[512];
    for (;;) {
      sockaddr_in from{};
      socklen_t fl = sizeof from;
      ssize_t n = ::recvfrom(us, buf + 5, sizeof buf - 5, 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 0) continue;
      std::memcpy(buf, "echo:", 5);
      ::sendto(us, buf, static_cast<size_t>(n) + 5, 0, reinterpret_cast<sockaddr*>(&from), fl);
    }
  }).detach();
  for (;;) {
    int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread(serveConn, fd, std::ref(st)).detach();
  }
}

sockaddr_in addrOf(const char* ip, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    std::fprintf(stderr, "seqstream: bad address %s\n", ip);
    std::exit(2);
  }
  return sa;
}

int client(const char* ip, int port, int seconds, int stallMs) {
  sockaddr_in sa = addrOf(ip, port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::printf("final sent=0 recv=0 errors=0 max_gap_ms=0 status=broken(connect: %s)\n", std::strerror(errno));
    return 1;
  }
  const char hello[] = "STREAM\n";
  (void)!::write(fd, hello, sizeof hello - 1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<bool> sendBroke{false};
  std::thread w([&] {
    if (!sendRecords(fd, stop, sent)) sendBroke = true;
  });
  Checker ck;
  const uint64_t t0 = nowMs();
  uint64_t last = t0, lastPrint = t0, maxGap = 0;
  std::string status = "ok";
  unsigned char buf[65536];
  for (;;) {
    uint64_t now = nowMs();
    if (now - t0 >= uint64_t(seconds) * 1000) break;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    now = nowMs();
    if (r > 0) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        status = std::string("broken(") + (n == 0 ? "eof" : std::strerror(errno)) + ")";
        break;
      }
      ck.feed(buf, static_cast<size_t>(n));
      maxGap = std::max(maxGap, now - last);
      last = now;
    }
    if (now - last > uint64_t(stallMs)) {
      status = "stalled";
      maxGap = now - last;
      break;
    }
    if (sendBroke) {
      status = "broken(send)";
      break;
    }
    if (now - lastPrint >= 200) {
      std::printf("progress t_ms=%llu sent=%llu recv=%llu errors=%llu\n", static_cast<unsigned long long>(now - t0),
                  static_cast<unsigned long long>(sent.load()), static_cast<unsigned long long>(ck.expect),
                  static_cast<unsigned long long>(ck.errors));
      std::fflush(stdout);
      lastPrint = now;
    }
  }
  // The silence at the end counts too.
  maxGap = std::max(maxGap, nowMs() - last);
  if (status == "ok" && maxGap > uint64_t(stallMs)) status = "stalled";
  stop = true;
  w.join();
  ::shutdown(fd, SHUT_WR);  // the server sees EOF after the last record
  std::printf("final sent=%llu recv=%llu errors=%llu max_gap_ms=%llu status=%s\n",
              static_cast<unsigned long long>(sent.load()), static_cast<unsigned long long>(ck.expect),
              static_cast<unsigned long long>(ck.errors), static_cast<unsigned long long>(maxGap), status.c_str());
  std::fflush(stdout);
  // Drain until the server closes, so its statistics are final.
  for (int i = 0; i < 50; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0 && ::read(fd, buf, sizeof buf) <= 0) break;
  }
  ::close(fd);
  return status == "ok" ? 0 : 1;
}

int udpProbe(const char* ip, int port) {
  sockaddr_in sa = addrOf(ip, port);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    ::sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 300) > 0) {
      char buf[64];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 9 && std::memcmp(buf, "echo:ping", 9) == 0) {
        std::printf("udp ok\n");
        return 0;
      }
    }
  }
  std::printf("udp no answer\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, seconds = 10, stallMs = 6000;
  const char* connect = nullptr;
  const char* udp = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "seqstream: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") port = std::atoi(next());
    else if (a == "--connect") connect = next();
    else if (a == "--udp") udp = next();
    else if (a == "--seconds") seconds = std::atoi(next());
    else if (a == "--stall-ms") stallMs = std::atoi(next());
    else {
      std::fprintf(stderr, "seqstream: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (port <= 0) {
    std::fprintf(stderr, "seqstream: --port is required\n");
    return 2;
  }
  if (udp) return udpProbe(udp, port);
  if (connect) return client(connect, port, seconds, stallMs);
  server(port);
}
