// zdtm-style workload for pre-copy: writes pseudo-random data at a given
// rate across a given footprint and proves, on request, that its memory is
// intact. Every write keeps a running checksum of the footprint up to date
// (sum over 64-bit words of mix(index, value)); VERIFY recomputes the sum
// from the memory itself. A page restored stale, lost or misplaced after a
// migration makes the two differ. The checksum lives in the same memory, so
// "the checksum at the freeze equals the checksum after restore" is exactly
// what VERIFY checks.
//
//   dirtier --port 7100 --mem 64 --rate 2000 [--threads N] [--mmap-churn]
//           [--fork-churn] [--free-churn] [--grow] [--child] [--sparse]
//
// --rate: 64-bit words written per second (each on a random page) in total
// --threads N: N writer threads, each owning a slice of the footprint
// --mmap-churn: a thread unmaps and maps again an 8 MiB region (same
//   address, MAP_FIXED) and refills it, over and over
// --fork-churn: a thread forks short-lived children that touch memory
// --free-churn: a thread gives pages of the footprint back to the kernel
//   (MADV_DONTNEED, as allocators do), 500 a second: they must read as
//   zeros afterwards, also after a migration
// --grow: a thread fills a further 16 MiB region one page at a time, 1,000
//   pages a second, so memory keeps appearing during a migration (VERIFY
//   reads only the part filled so far, never the untouched rest)
// --child: a long-lived child process with its own footprint and writer,
//   serving the same commands on port+1
// --strict-child: a child process in seccomp strict mode, blocked in read()
//   (nothing can be injected into it)
// --shared: the footprint is shared anonymous memory (CRIU dumps it as
//   shmem, which pre-copy compares page by page by content)
// --sparse: only every other page of the footprint is ever touched (filled
//   and written), so no two pages in memory are neighbours: CRIU's pagemap
//   then has one entry per page, and the lazy fill after a restore takes
//   its longest
//
// Commands (one line per TCP connection, one line back):
//   VERIFY -> "ok writes=N" | "BAD region=R expected=X actual=Y"
//   TPUT   -> "ns_per_page=N": writes every page of the footprint once
//            (the cost of first writes, which write-protection would raise)
//   GET    -> "pid=P writes=N counter=N"
//   ECHO   -> the connection stays open; every line sent comes back
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

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000 + uint64_t(ts.tv_nsec);
}

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t index, uint64_t value) { return splitmix(index * 0x2545F4914F6CDD1DULL ^ splitmix(value)); }

// A slice of memory with its running checksum.
struct Region {
  uint64_t* words = nullptr;
  size_t n = 0;
  uint64_t sum = 0;
  std::mutex mu;
  // Pages used: every `step`-th one; the others stay untouched zeros.
  size_t step = 1;
  static constexpr size_t kWordsPerPage = 4096 / 8;
  void fill(uint64_t seed) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; ++i) {
      if ((i / kWordsPerPage) % step == 0) words[i] = splitmix(seed + i);
      s += mix(i, words[i]);
    }
    sum = s;
  }
  void write(size_t i, uint64_t v) {
    std::lock_guard lk(mu);
    sum -= mix(i, words[i]);
    words[i] = v;
    sum += mix(i, v);
  }
  // 0 when intact, else the recomputed sum.
  // Words in use (a growing region fills up over time; the rest is never
  // touched, not even read).
  size_t live = SIZE_MAX;
  size_t used() const { return live < n ? live : n; }
  bool verify(uint64_t& expected, uint64_t& actual) {
    std::lock_guard lk(mu);
    uint64_t s = 0;
    for (size_t i = 0; i < used(); ++i) s += mix(i, words[i]);
    expected = sum;
    actual = s;
    return s == sum;
  }
};

struct State {
  std::vector<Region*> regions;
  std::atomic<uint64_t> writes{0};
  size_t bytes = 0;
  unsigned char* blob = nullptr;
};

void writer(State* st, Region* r, double perSec, uint64_t seed) {
  uint64_t x = seed | 1;
  const uint64_t t0 = nowNs();
  uint64_t done = 0;
  const size_t wordsPerPage = Region::kWordsPerPage;
  const size_t used = (r->n / wordsPerPage + r->step - 1) / r->step;
  for (;;) {
    uint64_t due = static_cast<uint64_t>(static_cast<double>(nowNs() - t0) / 1e9 * perSec);
    while (done < due) {
      x = splitmix(x);
      size_t page = x % used * r->step;
      size_t i = page * wordsPerPage + (x >> 40) % wordsPerPage;
      r->write(i, splitmix(x ^ done));
      ++done;
      st->writes.fetch_add(1, std::memory_order_relaxed);
    }
    usleep(2000);
  }
}

// Unmaps and maps again a region at the same address, refilling it.
void mmapChurn(Region* r) {
  const size_t len = r->n * 8;
  for (uint64_t gen = 1;; ++gen) {
    {
      std::lock_guard lk(r->mu);
      munmap(r->words, len);
      void* p = mmap(r->words, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != r->words) _exit(3);
      uint64_t s = 0;
      for (size_t i = 0; i < r->n; ++i) {
        r->words[i] = splitmix(gen * 1000003 + i);
        s += mix(i, r->words[i]);
      }
      r->sum = s;
    }
    usleep(20000);
  }
}

// Gives random pages of `r` back to the kernel; the checksum counts them as
// zeros, which is what the process reads there from now on.
void freeChurn(Region* r, uint64_t seed) {
  const size_t wordsPerPage = 4096 / 8, pages = r->n / wordsPerPage;
  uint64_t x = seed | 1;
  for (;;) {
    x = splitmix(x);
    const size_t first = (x % pages) * wordsPerPage;
    {
      std::lock_guard lk(r->mu);
      for (size_t i = first; i < first + wordsPerPage; ++i) r->sum -= mix(i, r->words[i]);
      if (madvise(r->words + first, 4096, MADV_DONTNEED) != 0) _exit(4);
      for (size_t i = first; i < first + wordsPerPage; ++i) r->sum += mix(i, 0);
    }
    usleep(2000);
  }
}

// Fills `r` one page at a time, from nothing (see --grow).
void grow(Region* r) {
  const size_t wordsPerPage = 4096 / 8;
  for (uint64_t gen = 1;; ++gen) {
    {
      std::lock_guard lk(r->mu);
      if (r->live >= r->n) return;
      for (size_t i = r->live; i < r->live + wordsPerPage; ++i) {
        r->words[i] = splitmix(i * 31 + gen);
        r->sum += mix(i, r->words[i]);
      }
      r->live += wordsPerPage;
    }
    usleep(1000);
  }
}

void forkChurn() {
  for (;;) {
    pid_t c = fork();
    if (c == 0) {
      // No malloc after fork in a threaded process: mmap.
      auto* mem =
          static_cast<char*>(mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      for (size_t i = 0; i < (1 << 20); i += 4096) mem[i] = static_cast<char>(i);
      usleep(100000 + (getpid() % 5) * 40000);
      _exit(0);
    }
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    usleep(50000);
  }
}

std::string answer(State& st, const std::string& req) {
  char out[256];
  if (req.rfind("VERIFY", 0) == 0) {
    for (size_t k = 0; k < st.regions.size(); ++k) {
      uint64_t e, a;
      if (!st.regions[k]->verify(e, a)) {
        std::snprintf(out, sizeof out, "BAD region=%zu expected=%016llx actual=%016llx\n", k,
                      static_cast<unsigned long long>(e), static_cast<unsigned long long>(a));
        return out;
      }
    }
    std::snprintf(out, sizeof out, "ok writes=%llu\n", static_cast<unsigned long long>(st.writes.load()));
    return out;
  }
  if (req.rfind("TPUT", 0) == 0) {
    // First writes to fresh pages of a scratch area the size of the
    // footprint: their cost is what write-protection would raise.
    void* p = mmap(nullptr, st.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    auto* m = static_cast<unsigned char*>(p);
    for (size_t i = 0; i < st.bytes; i += 4096) m[i] = 1;  // populate
    uint64_t best = ~0ull;
    for (int k = 0; k < 3; ++k) {
      uint64_t t0 = nowNs();
      for (size_t i = 0; i < st.bytes; i += 4096) m[i] += 1;
      best = std::min(best, nowNs() - t0);
    }
    munmap(p, st.bytes);
    // And the footprint itself (watched memory), once.
    uint64_t t0 = nowNs();
    for (auto* r : st.regions) {
      std::lock_guard lk(r->mu);
      for (size_t i = 0; i < r->used(); i += 512) {
        r->sum -= mix(i, r->words[i]);
        r->words[i] ^= 1;
        r->sum += mix(i, r->words[i]);
      }
    }
    uint64_t own = nowNs() - t0;
    std::snprintf(out, sizeof out, "ns_per_page=%llu scratch_ns_per_page=%llu\n",
                  static_cast<unsigned long long>(own / (st.bytes / 4096)),
                  static_cast<unsigned long long>(best / (st.bytes / 4096)));
    return out;
  }
  // counter= as counter_server says it, for the test bed's readiness probe.
  std::snprintf(out, sizeof out, "pid=%d writes=%llu counter=%llu\n", getpid(),
                static_cast<unsigned long long>(st.writes.load()), static_cast<unsigned long long>(st.writes.load()));
  return out;
}

[[noreturn]] void serve(State& st, int port) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(ls, 128) != 0) {
    std::perror("dirtier: listen");
    _exit(1);
  }
  for (;;) {
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    char buf[128] = {0};
    pollfd p{c, POLLIN, 0};
    ssize_t n = poll(&p, 1, 2000) > 0 ? read(c, buf, sizeof buf - 1) : 0;
    if (n > 0 && std::string(buf, static_cast<size_t>(n)).rfind("ECHO", 0) == 0) {
      // An established stream for a client that measures its gaps: every
      // line comes back, until the client closes.
      std::thread([c] {
        char line[512];
        for (ssize_t got; (got = read(c, line, sizeof line)) > 0;)
          if (write(c, line, static_cast<size_t>(got)) != got) break;
        close(c);
      }).detach();
      continue;
    }
    std::string a = answer(st, n > 0 ? std::string(buf, static_cast<size_t>(n)) : "GET");
    ssize_t w = write(c, a.data(), a.size());
    (void)w;
    close(c);
  }
}

void startWriters(State& st, size_t memMib, int threads, double rate, bool churn, uint64_t seed, bool shared = false,
                  bool freeing = false, bool growing = false, bool sparse = false) {
  st.bytes = memMib << 20;
  st.blob = static_cast<unsigned char*>(
      mmap(nullptr, st.bytes, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0));
  if (st.blob == MAP_FAILED) _exit(1);
  size_t slice = st.bytes / static_cast<size_t>(threads) / 4096 * 4096;
  for (int t = 0; t < threads; ++t) {
    auto* r = new Region;
    r->words = reinterpret_cast<uint64_t*>(st.blob + slice * static_cast<size_t>(t));
    r->n = slice / 8;
    r->step = sparse ? 2 : 1;
    r->fill(seed + static_cast<uint64_t>(t) * 7777);
    st.regions.push_back(r);
    std::thread(writer, &st, r, rate / threads, seed * 31 + static_cast<uint64_t>(t)).detach();
  }
  if (freeing) std::thread(freeChurn, st.regions[0], seed ^ 0x5eed).detach();
  if (growing) {
    auto* r = new Region;
    const size_t len = 16 << 20;
    r->words = static_cast<uint64_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    r->n = len / 8;
    r->live = 0;
    st.regions.push_back(r);
    std::thread(grow, r).detach();
  }
  if (churn) {
    auto* r = new Region;
    const size_t len = 8 << 20;
    r->words = static_cast<uint64_t*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    r->n = len / 8;
    r->fill(seed ^ 0xabcdef);
    st.regions.push_back(r);
    std::thread(mmapChurn, r).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 7100, threads = 1;
  size_t memMib = 64;
  double rate = 1000;
  bool mmapChurnOn = false, forkChurnOn = false, freeChurnOn = false, growOn = false, child = false,
       strictChild = false, shared = false, sparse = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "dirtier: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") port = std::atoi(next());
    else if (a == "--mem") memMib = std::strtoull(next(), nullptr, 10);
    else if (a == "--rate") rate = std::atof(next());
    else if (a == "--threads") threads = std::max(1, std::atoi(next()));
    else if (a == "--mmap-churn") mmapChurnOn = true;
    else if (a == "--fork-churn") forkChurnOn = true;
    else if (a == "--free-churn") freeChurnOn = true;
    else if (a == "--grow") growOn = true;
    else if (a == "--child") child = true;
    else if (a == "--strict-child") strictChild = true;
    else if (a == "--shared") shared = true;
    else if (a == "--sparse") sparse = true;
    else {
      std::fprintf(stderr, "dirtier: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (child && fork() == 0) {
    // Its own footprint (a quarter), writer and port.
    State cs;
    startWriters(cs, std::max<size_t>(1, memMib / 4), 1, rate / 4, false, 99);
    serve(cs, port + 1);
  }
  if (strictChild) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    if (fork() == 0) {
      close(fds[1]);
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
      char c;
      while (read(fds[0], &c, 1) > 0) {
      }
      syscall(SYS_exit, 0);
    }
    close(fds[0]);  // the write end stays open: the child blocks forever
  }
  State st;
  startWriters(st, memMib, threads, rate, mmapChurnOn, 12345, shared, freeChurnOn, growOn, sparse);
  if (forkChurnOn) std::thread(forkChurn).detach();
  serve(st, port);
}
