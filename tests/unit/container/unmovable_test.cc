// container/unmovable.h on processes of this test: each holds one kind of
// open file and waits; the lines name fd, process and the kind, and the
// kinds that move are not named.
#include "lxmig/container/unmovable.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace lxmig::container {
namespace {

// A child that runs `setup` then waits to be killed; its lines.
std::vector<std::string> linesOfChild(const std::function<void()>& setup) {
  int ready[2];
  if (::pipe(ready) != 0) return {"pipe failed"};
  pid_t pid = ::fork();
  if (pid == 0) {
    setup();
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  char c;
  (void)!::read(ready[0], &c, 1);
  auto lines = unmovableFiles({pid});
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  return lines;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

TEST(UnmovableFiles, EventfdInSemaphoreModeOnly) {
  auto plain = linesOfChild([] { (void)::eventfd(5, 0); });
  EXPECT_TRUE(plain.empty()) << joined(plain);
  auto sem = linesOfChild([] { (void)::eventfd(5, EFD_SEMAPHORE); });
  ASSERT_EQ(sem.size(), 1u) << joined(sem);
  EXPECT_NE(sem[0].find("semaphore mode"), std::string::npos) << sem[0];
  EXPECT_NE(sem[0].find("fd "), std::string::npos) << sem[0];
}

TEST(UnmovableFiles, SemaphoreAdjustmentsWithUndoOnly) {
  const int sem = ::semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
  ASSERT_GE(sem, 0) << std::strerror(errno);
  auto plain = linesOfChild([sem] {
    sembuf up = {0, 1, 0};
    (void)::semop(sem, &up, 1);
  });
  EXPECT_TRUE(plain.empty()) << joined(plain);
  auto undo = linesOfChild([sem] {
    sembuf down = {0, -1, SEM_UNDO};
    (void)::semop(sem, &down, 1);
  });
  ::semctl(sem, 0, IPC_RMID);
  ASSERT_EQ(undo.size(), 1u) << joined(undo);
  EXPECT_NE(undo[0].find("System V semaphore undo list (semop SEM_UNDO)"), std::string::npos) << undo[0];
  // A thread makes an (empty) undo list too: not named while its IPC
  // namespace holds no semaphore set.
  auto threads = linesOfChild([] {
    if (::unshare(CLONE_NEWIPC) != 0) std::abort();
    std::thread([] {
      for (;;) ::pause();
    }).detach();
  });
  EXPECT_TRUE(threads.empty()) << joined(threads);
}

TEST(UnmovableFiles, EpollOneshotThatFired) {
  auto armed = linesOfChild([] {
    int ep = ::epoll_create1(0), e = ::eventfd(0, 0);
    epoll_event ev{.events = EPOLLIN | EPOLLONESHOT, .data = {.u64 = 1}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
  });
  EXPECT_TRUE(armed.empty()) << joined(armed);
  auto fired = linesOfChild([] {
    int ep = ::epoll_create1(0), e = ::eventfd(1, 0);
    epoll_event ev{.events = EPOLLIN | EPOLLONESHOT, .data = {.u64 = 1}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    (void)::epoll_wait(ep, &ev, 1, 1000);
  });
  ASSERT_EQ(fired.size(), 1u) << joined(fired);
  EXPECT_NE(fired[0].find("EPOLLONESHOT"), std::string::npos) << fired[0];
}

TEST(UnmovableFiles, InotifyWithEventsQueued) {
  char dir[] = "/tmp/lxmig-unmovable-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string d = dir;
  auto idle = linesOfChild([&] { ::inotify_add_watch(::inotify_init1(0), d.c_str(), IN_CREATE); });
  EXPECT_TRUE(idle.empty()) << joined(idle);
  auto queued = linesOfChild([&] {
    ::inotify_add_watch(::inotify_init1(0), d.c_str(), IN_CREATE);
    std::fclose(std::fopen((d + "/f").c_str(), "w"));
  });
  ::unlink((d + "/f").c_str());
  ::rmdir(dir);
  ASSERT_EQ(queued.size(), 1u) << joined(queued);
  EXPECT_NE(queued[0].find("inotify instance with events queued"), std::string::npos) << queued[0];
}

// An open file whose name was removed: refused while another name keeps
// it linked (CRIU's link remap), not when it has no link left (a ghost
// file, carried in the images).
TEST(UnmovableFiles, UnlinkedOpenFileStillLinkedElsewhereOnly) {
  char dir[] = "/tmp/lxmig-unmovable-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string d = dir;
  auto ghost = linesOfChild([&] {
    (void)::open((d + "/ghost").c_str(), O_CREAT | O_RDWR, 0600);
    ::unlink((d + "/ghost").c_str());
  });
  EXPECT_TRUE(ghost.empty()) << joined(ghost);
  auto linked = linesOfChild([&] {
    (void)::open((d + "/a").c_str(), O_CREAT | O_RDWR, 0600);
    (void)!::link((d + "/a").c_str(), (d + "/b").c_str());
    ::unlink((d + "/a").c_str());
  });
  // A file named so, still there under that name, is no unlinked one.
  auto named = linesOfChild([&] { (void)::open((d + "/c (deleted)").c_str(), O_CREAT | O_RDWR, 0600); });
  EXPECT_TRUE(named.empty()) << joined(named);
  ::unlink((d + "/b").c_str());
  ::unlink((d + "/c (deleted)").c_str());
  ::rmdir(dir);
  ASSERT_EQ(linked.size(), 1u) << joined(linked);
  EXPECT_NE(linked[0].find("`" + d + "/a`, unlinked while open but linked elsewhere (1 links)"), std::string::npos)
      << linked[0];
}

TEST(UnmovableFiles, ArmedRealtimeTimerfd) {
  auto mono = linesOfChild([] {
    int t = ::timerfd_create(CLOCK_MONOTONIC, 0);
    itimerspec its{.it_interval = {1, 0}, .it_value = {1, 0}};
    ::timerfd_settime(t, 0, &its, nullptr);
  });
  EXPECT_TRUE(mono.empty()) << joined(mono);
  auto disarmed = linesOfChild([] { (void)::timerfd_create(CLOCK_REALTIME, 0); });
  EXPECT_TRUE(disarmed.empty()) << joined(disarmed);
  auto real = linesOfChild([] {
    int t = ::timerfd_create(CLOCK_REALTIME, 0);
    itimerspec its{.it_interval = {1, 0}, .it_value = {1, 0}};
    ::timerfd_settime(t, 0, &its, nullptr);
  });
  ASSERT_EQ(real.size(), 1u) << joined(real);
  EXPECT_NE(real[0].find("CLOCK_REALTIME timerfd"), std::string::npos) << real[0];
  // Expired with its ticks unread: it_value reads (0, 0), it is armed all the same.
  auto expired = linesOfChild([] {
    int t = ::timerfd_create(CLOCK_REALTIME, 0);
    itimerspec its{.it_interval = {0, 20000000}, .it_value = {0, 1000000}};
    ::timerfd_settime(t, 0, &its, nullptr);
    ::usleep(50000);
  });
  EXPECT_EQ(expired.size(), 1u) << joined(expired);
}

TEST(UnmovableFiles, StoppedProcess) {
  pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) ::pause();
  }
  EXPECT_TRUE(unmovableFiles({pid}).empty());
  ::kill(pid, SIGSTOP);
  for (int i = 0; i < 100 && unmovableFiles({pid}).empty(); ++i) ::usleep(10000);
  auto lines = unmovableFiles({pid});
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_EQ(lines.size(), 1u) << joined(lines);
  EXPECT_NE(lines[0].find("is stopped (SIGSTOP)"), std::string::npos) << lines[0];
}

// Only "lf" mappings whose Rss is below their Size; a path with spaces
// and a header that does not parse are no trouble.
TEST(LockOnFaultGaps, PartlyResidentOnFaultMappingsOnly) {
  const std::string smaps =
      "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 \n"
      "Size:               1024 kB\n"
      "Rss:                 512 kB\n"
      "Locked:              512 kB\n"
      "VmFlags: rd wr mr mw me lo ac lf \n"
      "7f0000200000-7f0000300000 rw-p 00000000 00:00 0 \n"
      "Size:               1024 kB\n"
      "Rss:                1024 kB\n"
      "VmFlags: rd wr mr mw me lo ac lf\n"
      "7f0000400000-7f0000500000 rw-p 00000000 00:00 0 \n"
      "Size:               1024 kB\n"
      "Rss:                   4 kB\n"
      "VmFlags: rd wr mr mw me lo ac\n"
      "7f0000600000-7f0000700000 r--s 00000000 fe:00 12 /tmp/a b lf\n"
      "Size:               1024 kB\n"
      "Rss:                   8 kB\n"
      "VmFlags: rd sh mr mw me ms lo lf\n"
      "zz-7f0000900000 rw-p 00000000 00:00 0 \n"
      "Size:               1024 kB\n"
      "Rss:                   0 kB\n"
      "VmFlags: rd wr lo lf\n";
  EXPECT_EQ(lockOnFaultGaps(smaps), (std::vector<LockOnFaultGap>{{0x7f0000000000, 0x7f0000100000, 512, 1024},
                                                                 {0x7f0000600000, 0x7f0000700000, 8, 1024}}));
  EXPECT_TRUE(lockOnFaultGaps("").empty());
  EXPECT_TRUE(lockOnFaultGaps("VmFlags: lf\nRss: 1 kB\n").empty());
}

TEST(UnmovableFiles, LockedOnFaultAndNotWhollyResident) {
  constexpr size_t kSize = 256 * 4096;
  auto half = linesOfChild([] {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (::mlock2(p, kSize, MLOCK_ONFAULT) == 0) std::memset(p, 1, kSize / 2);
  });
  ASSERT_EQ(half.size(), 1u) << joined(half);
  EXPECT_NE(half[0].find("locked on fault (mlock2 MLOCK_ONFAULT)"), std::string::npos) << half[0];
  EXPECT_NE(half[0].find("512 of 1024 kB resident"), std::string::npos) << half[0];
  auto whole = linesOfChild([] {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (::mlock2(p, kSize, MLOCK_ONFAULT) == 0) std::memset(p, 1, kSize);
  });
  EXPECT_TRUE(whole.empty()) << joined(whole);
  auto eager = linesOfChild([] {
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    (void)::mlock(p, kSize);
  });
  EXPECT_TRUE(eager.empty()) << joined(eager);
}

}  // namespace
}  // namespace lxmig::container
