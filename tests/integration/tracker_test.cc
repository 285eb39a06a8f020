// Dirty trackers and system call injection on real processes of this
// machine (no containers): the child processes here are small programs
// driven over pipes, and every check reads the kernel's own view.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "prerequisite.h"

#include "lxmig/base/files.h"
#include "lxmig/tracking/dirty_tracker.h"
#include "lxmig/tracking/inject.h"

namespace lxmig::tracking {
namespace {

constexpr size_t kBlobPages = 4096;  // 16 MiB

uint64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000 + uint64_t(ts.tv_nsec);
}

volatile sig_atomic_t gUsr1 = 0;

// A child process driven over pipes: it blocks in read() between commands,
// so injections land in the middle of a system call.
class Worker {
 public:
  // kSandboxed: uid 65534 under a seccomp filter that kills it for any of
  // the calls injection makes and it never does itself.
  enum Mode { kPlain, kSeccompStrict, kThreads, kNobody, kSandboxed };
  explicit Worker(Mode mode = kPlain) {
    int a[2], b[2];
    EXPECT_EQ(::pipe(a), 0);
    EXPECT_EQ(::pipe(b), 0);
    void* blob = ::mmap(nullptr, kBlobPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    blob_ = reinterpret_cast<uint64_t>(blob);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(a[1]);
      ::close(b[0]);
      run(a[0], b[1], static_cast<unsigned char*>(blob), mode);
      ::_exit(0);
    }
    ::munmap(blob, kBlobPages * 4096);
    ::close(a[0]);
    ::close(b[1]);
    cmd_ = a[1];
    rep_ = b[0];
    EXPECT_EQ(call('p', 0), 1u);  // ready
  }
  ~Worker() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(cmd_);
    ::close(rep_);
  }
  uint64_t call(char op, uint64_t arg) {
    char msg[9];
    msg[0] = op;
    std::memcpy(msg + 1, &arg, 8);
    if (::write(cmd_, msg, 9) != 9) return ~0ull;
    uint64_t r = ~0ull;
    if (::read(rep_, &r, 8) != 8) return ~0ull;
    return r;
  }
  pid_t pid() const { return pid_; }
  uint64_t blob() const { return blob_; }
  Range blobRange() const { return {blob_, blob_ + kBlobPages * 4096}; }
  int fdCount() const {
    int n = 0;
    for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) ++n;
    return n;
  }

 private:
  static void run(int in, int out, unsigned char* blob, Mode mode) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { gUsr1 = gUsr1 + 1; };
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGUSR1, &sa, nullptr);
    for (size_t i = 0; i < kBlobPages; ++i) blob[i * 4096] = 1;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    if (mode == kThreads)
      for (int t = 0; t < 3; ++t)
        threads.emplace_back([&stop] {
          std::vector<char> own(1 << 20);
          while (!stop) own[size_t(nowNs()) % own.size()]++;
        });
    // A daemon that dropped its privileges: it may not call userfaultfd().
    if ((mode == kNobody || mode == kSandboxed) && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(1);
    if (mode == kSandboxed && !killOnInjectedCalls()) ::_exit(1);
    if (mode == kSeccompStrict) {
      // Ready only once strict (write is one of the four calls it allows):
      // said before, the test could look at the process before the prctl.
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
      uint64_t one = 1;
      (void)!::write(out, &one, 8);
      char c;
      while (::read(in, &c, 1) == 1) {
      }
      ::syscall(SYS_exit, 0);
    }
    for (;;) {
      char msg[9];
      ssize_t n = ::read(in, msg, 9);
      if (n != 9) break;
      uint64_t arg;
      std::memcpy(&arg, msg + 1, 8);
      uint64_t r = 1;
      switch (msg[0]) {
        case 'p':
          break;
        case 'w':
          blob[(arg % kBlobPages) * 4096] += 1;
          break;
        case 'm':  // replace the mapping at the same address
          ::munmap(blob, kBlobPages * 4096);
          r = ::mmap(blob, kBlobPages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                      blob
                  ? 1
                  : 0;
          for (size_t i = 0; i < kBlobPages; ++i) blob[i * 4096] = 2;
          break;
        case 't': {  // ns to write every page once (best of 3)
          r = ~0ull;
          for (int k = 0; k < 3; ++k) {
            uint64_t t0 = nowNs();
            for (size_t i = 0; i < kBlobPages; ++i) blob[i * 4096] += 1;
            r = std::min(r, nowNs() - t0);
          }
          break;
        }
        case 's':
          r = static_cast<uint64_t>(gUsr1);
          break;
        case 'd':
          r = ::madvise(blob + (arg % kBlobPages) * 4096, 4096, MADV_DONTNEED) == 0 ? 1 : 0;
          break;
        default:
          r = 0;
      }
      if (::write(out, &r, 8) != 8) break;
    }
    stop = true;
    for (auto& t : threads) t.join();
  }
  static bool killOnInjectedCalls() {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_recvmsg, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
  }
  pid_t pid_ = -1;
  int cmd_ = -1, rep_ = -1;
  uint64_t blob_ = 0;
};

const TrackerBackend& backend(const char* name) {
  for (const auto& b : trackerBackends())
    if (std::string(b.name) == name) return b;
  throw std::runtime_error("no backend");
}

PageSet inBlob(const PageSet& s, const Worker& w) {
  PageSet blob;
  blob.add(w.blobRange());
  PageSet out = s;
  out.intersect(blob);
  return out;
}

TEST(Inject, StealsUserfaultfdUnnoticed) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  int before = w.fdCount();
  // The worker sits in read(): the injected calls interrupt it and the read
  // must carry on afterwards as if nothing happened.
  auto fd = stealUserfaultfd(w.pid());
  ASSERT_TRUE(fd.ok()) << fd.status().toString();
  char link[64] = {0};
  ASSERT_GT(::readlink(("/proc/self/fd/" + std::to_string(fd->get())).c_str(), link, sizeof link - 1), 0);
  EXPECT_STREQ(link, "anon_inode:[userfaultfd]");
  EXPECT_EQ(w.fdCount(), before) << "the process keeps no copy of the fd";
  EXPECT_EQ(w.call('p', 0), 1u) << "the interrupted read() went on";
}

TEST(Inject, SignalArrivingWhileAttachedIsDelivered) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  {
    auto in = Injector::attach(w.pid());
    ASSERT_TRUE(in.ok()) << in.status().toString();
    ASSERT_EQ(::kill(w.pid(), SIGUSR1), 0);
    auto r = in->syscall(SYS_getpid);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    EXPECT_GT(*r, 0);
    ASSERT_TRUE(in->detach().ok());
  }
  EXPECT_EQ(w.call('s', 0), 1u) << "SIGUSR1 reached its handler exactly once";
}

TEST(Inject, AProcessThatCannotStopIsLetGoNotWaitedForForever) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  // A vfork parent whose child neither execs nor exits sits in a killable
  // wait: it does not stop for ptrace until its child is done (a container
  // can make that forever). The attach gives up; the parent is not left
  // traced or stopped: it goes on once its child exits.
  int done[2];
  ASSERT_EQ(::pipe(done), 0);
  const pid_t parent = ::fork();
  if (parent == 0) {
    ::close(done[0]);
    if (::vfork() == 0) {
      const timespec t{Injector::kStopWaitMs / 1000 + 2, 0};
      ::syscall(SYS_nanosleep, &t, nullptr);
      ::_exit(0);
    }
    (void)!::write(done[1], "k", 1);
    ::_exit(7);
  }
  ASSERT_GT(parent, 0);
  ::close(done[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // in the vfork wait by now
  auto fd = stealUserfaultfd(parent);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kDeadlineExceeded) << fd.status().toString();
  EXPECT_NE(fd.status().message().find("did not stop for ptrace"), std::string::npos) << fd.status().toString();
  // Once the child exits the parent runs to its end (a tracee left stopped
  // never would): bounded, so a regression fails instead of hanging.
  int ws = 0;
  pid_t r = 0;
  for (int i = 0; i < 300 && r == 0; ++i) {
    r = ::waitpid(parent, &ws, WNOHANG);
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (r == 0) ::kill(parent, SIGKILL), ::waitpid(parent, &ws, 0);
  ASSERT_EQ(r, parent) << "the vfork parent never went on";
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 7) << ws;
  char c = 0;
  EXPECT_EQ(::read(done[0], &c, 1), 1);
  EXPECT_EQ(c, 'k');
  ::close(done[0]);
}

TEST(Inject, SeccompStrictProcessIsRefusedNotKilled) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w(Worker::kSeccompStrict);
  auto t = backend("uffd-wp").create(w.pid());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(t.status().message().find("seccomp strict"), std::string::npos) << t.status().message();
  EXPECT_EQ(::kill(w.pid(), 0), 0) << "still alive";
}

TEST(UffdWp, ReportsExactlyTheWrittenPages) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  ASSERT_TRUE(backend("uffd-wp").probe().ok()) << backend("uffd-wp").probe().toString();
  // kSandboxed: its filter is suspended for the injected calls only.
  for (auto mode : {Worker::kPlain, Worker::kThreads, Worker::kNobody, Worker::kSandboxed}) {
    SCOPED_TRACE(mode);
    Worker w(mode);
    auto t = backend("uffd-wp").create(w.pid());
    ASSERT_TRUE(t.ok()) << t.status().toString();
    auto armed = (*t)->arm();
    ASSERT_TRUE(armed.ok()) << armed.status().toString();
    EXPECT_EQ(inBlob(*armed, w).bytes(), kBlobPages * 4096) << "the whole blob is watched";
    for (uint64_t p : {3, 7, 8, 100}) w.call('w', p);
    auto s = (*t)->collect(true);
    ASSERT_TRUE(s.ok()) << s.status().toString();
    PageSet want;
    for (uint64_t p : {3ull, 7ull, 100ull}) want.add(w.blob() + p * 4096, w.blob() + (p + 1) * 4096);
    want.add(w.blob() + 8 * 4096, w.blob() + 9 * 4096);
    EXPECT_EQ(inBlob(s->written, w).ranges(), want.ranges());
    EXPECT_EQ(inBlob(s->watched, w).bytes(), kBlobPages * 4096);
    auto again = (*t)->collect(true);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(inBlob(again->written, w).empty()) << "collect re-protects what it reported";
    auto present = presentPages(w.pid(), {w.blobRange()});
    ASSERT_TRUE(present.ok());
    EXPECT_EQ(present->bytes(), kBlobPages * 4096);
  }
}

// Round 0 protects as it reads: until protect() covers a page, the page
// counts as written (so a caller that never protects it resends it), and a
// write to it costs no fault.
// A process that may not make a userfaultfd itself (uid 65534, the global
// sysctl untouched) gets one through /dev/userfaultfd, and keeps nothing of
// the way: no extra fd, no scratch mapping.
TEST(UffdWp, AProcessOfAnotherUidIsTrackedThroughTheDevice) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  LXMIG_REQUIRE(pathExists("/dev/userfaultfd"), "/dev/userfaultfd (Linux 6.1)");
  Worker w(Worker::kNobody);
  EXPECT_EQ(userfaultfdWay(w.pid()), readFile("/proc/sys/vm/unprivileged_userfaultfd").value_or("0")[0] == '1'
                                         ? "userfaultfd()"
                                         : "/dev/userfaultfd");
  const int fdsBefore = w.fdCount();
  const std::string mapsBefore = readFile("/proc/" + std::to_string(w.pid()) + "/maps").value_or("");
  auto fd = stealUserfaultfd(w.pid());
  ASSERT_TRUE(fd.ok()) << fd.status().toString();
  EXPECT_EQ(w.fdCount(), fdsBefore) << "descriptors left in the process";
  EXPECT_EQ(readFile("/proc/" + std::to_string(w.pid()) + "/maps").value_or(""), mapsBefore) << "mappings changed";
  EXPECT_EQ(w.call('p', 0), 1u) << "the process runs on";
}

TEST(UffdWp, DeferredArmingProtectsOnlyWhatIsProtected) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  auto t = backend("uffd-wp").create(w.pid());
  ASSERT_TRUE(t.ok()) << t.status().toString();
  auto armed = (*t)->armDeferred();
  ASSERT_TRUE(armed.ok()) << armed.status().toString();
  EXPECT_EQ(inBlob(*armed, w).bytes(), kBlobPages * 4096) << "the whole blob is watched";
  auto page = [&](uint64_t p) { return Range{w.blob() + p * 4096, w.blob() + (p + 1) * 4096}; };
  // Pages 0-99 protected (as if read), then 5 and 50 written; 200 written
  // but never protected.
  ASSERT_TRUE((*t)->protect(Range{w.blob(), w.blob() + 100 * 4096}).ok());
  for (uint64_t p : {5, 50, 200}) w.call('w', p);
  auto s = (*t)->collect(true);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  PageSet written = inBlob(s->written, w);
  EXPECT_TRUE(written.contains(page(5).start) && written.contains(page(50).start));
  for (uint64_t p : {0, 6, 99})
    EXPECT_FALSE(written.contains(page(p).start)) << "page " << p << " protected, not written";
  // Everything never protected counts as written.
  EXPECT_EQ(written.bytes(), (2 + kBlobPages - 100) * 4096);
  // Protecting again a page written since its protection would forget
  // that write: the caller must never do it (PreCopy protects each page
  // once per round, ahead of its read).
  // The collect protected the rest: from now on only writes show.
  w.call('w', 3000);
  auto s2 = (*t)->collect(true);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(inBlob(s2->written, w).ranges(), std::vector<Range>{page(3000)});
  // Protecting memory that is not armed (or outside any mapping) is harmless.
  EXPECT_TRUE((*t)->protect(Range{0x1000, 0x2000}).ok());
}

// A page the process gives back (MADV_DONTNEED) must stay a hole: CRIU
// dumps what /proc/PID/pagemap shows present or swapped, and a uffd-wp
// marker there reads as swapped, so a marker would make the dump carry the
// page (and the target restore the content it held before, not zeros).
TEST(UffdWp, FreedPagesStayHoles) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  auto t = backend("uffd-wp").create(w.pid());
  ASSERT_TRUE(t.ok()) << t.status().toString();
  ASSERT_TRUE((*t)->arm().ok());
  ASSERT_EQ(w.call('d', 7), 1u);
  ASSERT_TRUE((*t)->collect(true).ok());
  ASSERT_TRUE((*t)->collect(true).ok());
  auto bits = [&](uint64_t page) {
    int pm = ::open(("/proc/" + std::to_string(w.pid()) + "/pagemap").c_str(), O_RDONLY);
    uint64_t word = 0;
    EXPECT_EQ(::pread(pm, &word, 8, static_cast<off_t>((w.blob() / 4096 + page) * 8)), 8);
    ::close(pm);
    return word >> 62;  // bit 63 present, bit 62 swapped
  };
  EXPECT_EQ(bits(7), 0u) << "freed page: neither present nor swapped";
  EXPECT_EQ(bits(8), 2u) << "a page still held is present";
  // Written again, it is a new page, not protected: reported.
  w.call('w', 7);
  auto s = (*t)->collect(true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(inBlob(s->written, w).ranges(), (std::vector<Range>{{w.blob() + 7 * 4096, w.blob() + 8 * 4096}}));
}

TEST(UffdWp, ReplacedMappingIsUnwatchedThenArmedAgain) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  auto t = backend("uffd-wp").create(w.pid());
  ASSERT_TRUE(t.ok()) << t.status().toString();
  ASSERT_TRUE((*t)->arm().ok());
  ASSERT_EQ(w.call('m', 0), 1u);
  auto s = (*t)->collect(true);
  ASSERT_TRUE(s.ok()) << s.status().toString();
  EXPECT_TRUE(inBlob(s->watched, w).empty()) << "a replaced mapping was not watched throughout";
  EXPECT_EQ(inBlob(s->armed, w).bytes(), kBlobPages * 4096) << "and is watched again from now on";
  w.call('w', 5);
  auto s2 = (*t)->collect(true);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(inBlob(s2->written, w).bytes(), 4096u);
}

TEST(UffdWp, DisarmLeavesNoProtectionBehind) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  Worker w;
  uint64_t before = w.call('t', 0);
  auto t = backend("uffd-wp").create(w.pid());
  ASSERT_TRUE(t.ok()) << t.status().toString();
  ASSERT_TRUE((*t)->arm().ok());
  ASSERT_TRUE((*t)->collect(false).ok());
  auto wpAllowed = [&] {
    auto wp = writeProtectRegistered(w.pid());
    EXPECT_TRUE(wp.ok()) << wp.status().toString();
    return wp.ok() ? wp->ranges().size() : 0;
  };
  ASSERT_GT(wpAllowed(), 0u) << "armed memory shows as write-protect capable";
  (*t)->disarm();
  (*t)->disarm();  // idempotent
  // The kernel's view: no page of the process is write-protect capable.
  EXPECT_EQ(wpAllowed(), 0u) << "regions still registered";
  // And the process's view: writing every page costs what it cost before
  // (a protected page would take a fault on its first write).
  uint64_t after = w.call('t', 0);
  EXPECT_LT(after, before * 2 + 2000000) << "before " << before << " ns, after " << after << " ns";
}

TEST(UffdWp, ExitedProcessIsNotFound) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  auto w = std::make_unique<Worker>();
  auto t = backend("uffd-wp").create(w->pid());
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->arm().ok());
  w.reset();
  auto s = (*t)->collect(true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound) << s.status().toString();
}

TEST(UffdWp, AZombieIsNotFoundNotAFailure) {
  LXMIG_REQUIRE(::geteuid() == 0, "root");
  // A process that exits while a round attaches to it (a PostgreSQL
  // backend whose client left) has nothing left to watch: NotFound, never
  // a "not tracked" warning. A zombie stands in for it here; caught a
  // moment earlier, with its mappings gone but its memory not yet, the
  // injector says the same (an empty maps, tracking/inject.cc).
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  for (int i = 0; i < 500 && readFile("/proc/" + std::to_string(child) + "/maps").value_or("x") != ""; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto t = backend("uffd-wp").create(child);
  ::waitpid(child, nullptr, 0);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kNotFound) << t.status().toString();
}

TEST(Trackers, ChooseReportsWhatWorksHere) {
  auto a = chooseTracker("auto");
  ASSERT_TRUE(a.ok());
  EXPECT_STREQ((*a)->name, backend("uffd-wp").probe().ok() ? "uffd-wp" : "none");
  EXPECT_FALSE(chooseTracker("bogus").ok());
  EXPECT_TRUE(chooseTracker("none").ok());
  // This kernel has no soft-dirty (PLATFORM.md): naming it is refused.
  if (!backend("soft-dirty").probe().ok()) {
    EXPECT_EQ(chooseTracker("soft-dirty").status().code(), Code::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace lxmig::tracking
