// The grouping engine against real processes: each test forks processes
// that share exactly one kind of IPC object (or, for the negative cases,
// nothing that counts), scans the node and checks the partition.
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "lxmig/base/files.h"
#include "lxmig/grouping/ipc_graph.h"

namespace lxmig::grouping {
namespace {

// In a forked process: stdio to /dev/null and every other fd closed but
// `keep`, so test processes share nothing by accident (such as the test's
// own output pipes).
void isolate(const std::vector<int>& keep) {
  int devnull = ::open("/dev/null", O_RDWR);
  for (int fd : {0, 1, 2}) ::dup2(devnull, fd);
  std::vector<int> close;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::atoi(e.path().filename().c_str());
    if (fd > 2 && std::find(keep.begin(), keep.end(), fd) == keep.end()) close.push_back(fd);
  }
  for (int fd : close) ::close(fd);
}

// From inside a Child's setup: forks a grandchild that keeps only `keep`
// and waits to be killed; returns once the grandchild has dropped what it
// inherited, so no scan sees it still holding the test's output pipe.
void forkIsolated(const std::vector<int>& keep) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) std::abort();
  if (::fork() == 0) {
    std::vector<int> k = keep;
    k.push_back(ready[1]);
    isolate(k);
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(1);
    ::close(ready[1]);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c;
  if (::read(ready[0], &c, 1) != 1) std::abort();
  ::close(ready[0]);
}

// A forked process that runs `setup`, keeps only the fds it names (stdio goes
// to /dev/null, so the children do not share the test's output pipes), says
// it is ready and then waits to be killed.
class Child {
 public:
  Child(std::function<std::vector<int>()> setup) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      std::vector<int> keep = setup();
      keep.push_back(ready[1]);
      isolate(keep);
      char c = 1;
      if (::write(ready[1], &c, 1) != 1) ::_exit(1);
      ::close(ready[1]);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char c;
    if (::read(ready[0], &c, 1) != 1) ADD_FAILURE() << "child " << pid_ << " died during setup";
    ::close(ready[0]);
  }
  ~Child() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// A temporary directory removed with everything in it, also when an
// assertion ends the test early.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/lxmig-grouping-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

std::set<pid_t> membersOf(const Scan& scan, pid_t pid) {
  auto g = groupOf(scan, pid);
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  return {g->members.begin(), g->members.end()};
}

// Asserts that a and b form a group of exactly two joined by `kind`, and
// returns the edge.
Edge expectPair(pid_t a, pid_t b, const std::string& kind) {
  Scan scan = scanNode({});
  auto g = groupOf(scan, a);
  EXPECT_TRUE(g.ok());
  if (!g.ok()) return {};
  std::string edges;
  for (const auto& e : g->edges)
    edges += "\n  " + e.kind + " " + e.object + " " + std::to_string(e.a.pid) + " " + e.a.how + " <-> " +
             std::to_string(e.b.pid) + " " + e.b.how;
  EXPECT_EQ(std::set<pid_t>(g->members.begin(), g->members.end()), (std::set<pid_t>{a, b})) << edges;
  EXPECT_EQ(g->verdict, "host");
  EXPECT_FALSE(g->edges.empty());
  for (const auto& e : g->edges) {
    if (e.kind != kind) continue;
    EXPECT_TRUE((e.a.pid == a && e.b.pid == b) || (e.a.pid == b && e.b.pid == a));
    EXPECT_FALSE(e.object.empty());
    EXPECT_FALSE(e.a.how.empty());
    EXPECT_FALSE(e.b.how.empty());
    return e;
  }
  ADD_FAILURE() << "no " << kind << " edge; edges: " << g->edges.size() << " first kind "
                << (g->edges.empty() ? "-" : g->edges[0].kind);
  return {};
}

void expectAlone(const Scan& scan, pid_t pid) {
  auto g = groupOf(scan, pid);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->verdict, "alone") << "pid " << pid << " is in group " << g->id << " with " << g->members.size()
                                 << " members, first edge "
                                 << (g->edges.empty() ? "-" : g->edges[0].kind + " " + g->edges[0].object);
}

// Two processes holding the two ends of one pipe, and nothing else.
struct PipePair {
  std::unique_ptr<Child> a, b;
};
PipePair pipePair() {
  int p[2];
  if (::pipe(p) != 0) std::abort();
  PipePair pp;
  pp.a = std::make_unique<Child>([&] { return std::vector<int>{p[0]}; });
  pp.b = std::make_unique<Child>([&] { return std::vector<int>{p[1]}; });
  ::close(p[0]);
  ::close(p[1]);
  return pp;
}

TEST(GroupingTest, AnonymousPipe) {
  PipePair pp = pipePair();
  Child& a = *pp.a;
  Child& b = *pp.b;
  Edge e = expectPair(a.pid(), b.pid(), kPipe);
  EXPECT_EQ(e.object.rfind("pipe:[", 0), 0u);
  EXPECT_TRUE(startsWith(e.a.how, "fd "));
}

TEST(GroupingTest, NamedFifo) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  std::string fifo = dir + "/f";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Child a([&] { return std::vector<int>{::open(fifo.c_str(), O_RDWR)}; });
  Child b([&] { return std::vector<int>{::open(fifo.c_str(), O_RDWR)}; });
  Edge e = expectPair(a.pid(), b.pid(), kFifo);
  EXPECT_EQ(e.path, fifo);
}

TEST(GroupingTest, UnixSocketpair) {
  for (int type : {SOCK_STREAM, SOCK_SEQPACKET}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, type, 0, sv), 0);
    Child a([&] { return std::vector<int>{sv[0]}; });
    Child b([&] { return std::vector<int>{sv[1]}; });
    ::close(sv[0]);
    ::close(sv[1]);
    Edge e = expectPair(a.pid(), b.pid(), kUnixStream);
    EXPECT_NE(e.object.find("<->"), std::string::npos);
  }
}

// A Unix address: a path, or an abstract name (no leading NUL in `name`).
socklen_t unixAddress(const std::string& name, bool abstract, sockaddr_un* sa) {
  *sa = {};
  sa->sun_family = AF_UNIX;
  if (abstract) {
    std::memcpy(sa->sun_path + 1, name.data(), name.size());
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  }
  std::strncpy(sa->sun_path, name.c_str(), sizeof sa->sun_path - 1);
  return sizeof *sa;
}

int listenAt(const std::string& name, bool abstract, int type = SOCK_STREAM) {
  int s = ::socket(AF_UNIX, type, 0);
  sockaddr_un sa;
  socklen_t len = unixAddress(name, abstract, &sa);
  if (::bind(s, reinterpret_cast<sockaddr*>(&sa), len) != 0) return -1;
  if (type != SOCK_DGRAM && ::listen(s, 16) != 0) return -1;
  return s;
}

int connectTo(const std::string& name, bool abstract, int type = SOCK_STREAM) {
  int s = ::socket(AF_UNIX, type, 0);
  sockaddr_un sa;
  socklen_t len = unixAddress(name, abstract, &sa);
  return ::connect(s, reinterpret_cast<sockaddr*>(&sa), len) == 0 ? s : -1;
}

TEST(GroupingTest, NamedListenerWithPendingAndAcceptedClients) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  std::string path = dir + "/l.sock";
  // Pending: the server has not accepted yet.
  {
    Child server([&] { return std::vector<int>{listenAt(path, false)}; });
    Child client([&] { return std::vector<int>{connectTo(path, false)}; });
    Edge e = expectPair(server.pid(), client.pid(), kUnixListener);
    EXPECT_EQ(e.path, path);
  }
  std::filesystem::remove(path);
  // Accepted: a connected stream pair that carries the listener's name. The
  // client connects first (the backlog holds it), then the server accepts.
  {
    int l = listenAt(path, false);
    ASSERT_GE(l, 0);
    Child client([&] { return std::vector<int>{connectTo(path, false)}; });
    Child server([&] {
      int conn = ::accept(l, nullptr, nullptr);
      return std::vector<int>{conn};
    });
    ::close(l);
    Edge e = expectPair(server.pid(), client.pid(), kUnixStream);
    EXPECT_EQ(e.path, path);
  }
}

TEST(GroupingTest, AbstractListener) {
  std::string name = "lxmig-test-" + std::to_string(::getpid());
  Child server([&] { return std::vector<int>{listenAt(name, true)}; });
  Child client([&] { return std::vector<int>{connectTo(name, true)}; });
  Edge e = expectPair(server.pid(), client.pid(), kUnixListener);
  EXPECT_EQ(e.path, "@" + name);
}

TEST(GroupingTest, DatagramToBoundSocket) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  std::string path = dir + "/d.sock";
  Child server([&] { return std::vector<int>{listenAt(path, false, SOCK_DGRAM)}; });
  Child client([&] { return std::vector<int>{connectTo(path, false, SOCK_DGRAM)}; });
  Edge e = expectPair(server.pid(), client.pid(), kUnixDgram);
  EXPECT_EQ(e.path, path);
}

TEST(GroupingTest, SysvSharedMemory) {
  int id = ::shmget(IPC_PRIVATE, 1 << 16, IPC_CREAT | 0600);
  ASSERT_GE(id, 0);
  Child a([&] { return ::shmat(id, nullptr, 0) == (void*)-1 ? std::vector<int>{} : std::vector<int>{}; });
  Child b([&] { return ::shmat(id, nullptr, 0) == (void*)-1 ? std::vector<int>{} : std::vector<int>{}; });
  Edge e = expectPair(a.pid(), b.pid(), kSysvShm);
  EXPECT_TRUE(startsWith(e.path, "/SYSV"));
  EXPECT_TRUE(startsWith(e.object, "shmid " + std::to_string(id) + " key 0x")) << e.object;
  EXPECT_NE(e.object.find("nattch 2"), std::string::npos) << e.object;
  EXPECT_TRUE(startsWith(e.a.how, "map "));
  ::shmctl(id, IPC_RMID, nullptr);
}

// Two IPC namespaces, each with its first segment: both are shmid 0 on the
// same internal mount (the same dev:inode in maps), yet not one object.
TEST(GroupingTest, SysvSegmentsOfTheSameIdInTwoIpcNamespacesAreNotShared) {
  auto own = [] {
    if (::unshare(CLONE_NEWIPC) != 0) std::abort();
    int id = ::shmget(IPC_PRIVATE, 1 << 16, IPC_CREAT | 0600);
    if (id != 0 || ::shmat(id, nullptr, 0) == (void*)-1) std::abort();
    return std::vector<int>{};
  };
  Child a(own), b(own);
  Scan scan = scanNode({});
  expectAlone(scan, a.pid());
  expectAlone(scan, b.pid());
}

TEST(GroupingTest, PosixSharedMemoryMappedOrOpen) {
  std::string name = "/lxmig-test-" + std::to_string(::getpid());
  int fd = ::shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  ::close(fd);
  Child mapper([&] {
    int f = ::shm_open(name.c_str(), O_RDWR, 0);
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    ::close(f);
    (void)p;
    return std::vector<int>{};
  });
  Child opener([&] { return std::vector<int>{::shm_open(name.c_str(), O_RDWR, 0)}; });
  Edge e = expectPair(mapper.pid(), opener.pid(), kPosixShm);
  EXPECT_EQ(e.path, "/dev/shm" + name);
  ::shm_unlink(name.c_str());
}

TEST(GroupingTest, MemfdSharedBetweenProcesses) {
  int fd = ::memfd_create("lxmig-test", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  Child mapper([&] {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    (void)p;
    return std::vector<int>{};
  });
  Child holder([&] { return std::vector<int>{fd}; });
  ::close(fd);
  Edge e = expectPair(mapper.pid(), holder.pid(), kMemfd);
  EXPECT_TRUE(startsWith(e.path, "/memfd:lxmig-test"));
}

TEST(GroupingTest, SharedAnonymousMappingInheritedAcrossFork) {
  void* p = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  Child a([&] { return std::vector<int>{}; });
  Child b([&] { return std::vector<int>{}; });
  ::munmap(p, 1 << 16);
  expectPair(a.pid(), b.pid(), kSharedAnon);
}

// A daemon's maps run to many kilobytes (PostgreSQL, or any process built
// with ASan) and the kernel hands /proc/PID/maps out a page at a time: a
// shared mapping far down the listing is still found. Mapped first, it
// sits above the 400 private mappings made after it (top-down mmap), so
// it is listed after them.
TEST(GroupingTest, SharedMappingBelowKilobytesOfMapsIsFound) {
  void* shared = ::mmap(nullptr, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  std::vector<void*> filler;
  for (int i = 0; i < 400; ++i) {  // alternate protections so neighbours do not merge
    void* p = ::mmap(nullptr, 4096, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    filler.push_back(p);
  }
  Child a([&] { return std::vector<int>{}; });
  Child b([&] { return std::vector<int>{}; });
  for (void* p : filler) ::munmap(p, 4096);
  ::munmap(shared, 1 << 16);
  auto maps = readFile("/proc/" + std::to_string(a.pid()) + "/maps");
  ASSERT_TRUE(maps.ok());
  ASSERT_GT(maps->size(), 16384u) << "the listing must span several reads";
  expectPair(a.pid(), b.pid(), kSharedAnon);
}

TEST(GroupingTest, PosixMessageQueue) {
  std::string name = "/lxmig-test-" + std::to_string(::getpid());
  mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_RDWR, 0600, nullptr);
  ASSERT_NE(q, (mqd_t)-1);
  Child a([&] { return std::vector<int>{q}; });
  Child b([&] { return std::vector<int>{::mq_open(name.c_str(), O_RDWR)}; });
  ::mq_close(q);
  Edge e = expectPair(a.pid(), b.pid(), kMqueue);
  EXPECT_EQ(e.path, name);
  ::mq_unlink(name.c_str());
}

TEST(GroupingTest, EventfdSharedThroughFork) {
  int efd = ::eventfd(0, 0);
  ASSERT_GE(efd, 0);
  Child a([&] { return std::vector<int>{efd}; });
  Child b([&] { return std::vector<int>{efd}; });
  // An eventfd of its own: same anon inode, different file, not an edge.
  Child c([&] { return std::vector<int>{::eventfd(0, 0)}; });
  ::close(efd);
  Edge e = expectPair(a.pid(), b.pid(), kSharedFile);
  EXPECT_EQ(e.path, "anon_inode:[eventfd]");
  expectAlone(scanNode({}), c.pid());
}

TEST(GroupingTest, NotEdges) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  std::string file = dir + "/regular";
  ASSERT_TRUE(writeFileAtomic(file, "data").ok());
  int inherited = ::open(file.c_str(), O_RDONLY);
  // Same regular file: opened separately, and one open file inherited.
  Child a([&] { return std::vector<int>{::open(file.c_str(), O_RDONLY), inherited}; });
  Child b([&] { return std::vector<int>{::open(file.c_str(), O_RDONLY), inherited}; });
  ::close(inherited);
  // Read-only shared mapping of the same file.
  Child c([&] {
    int f = ::open(file.c_str(), O_RDONLY);
    (void)::mmap(nullptr, 4, PROT_READ, MAP_SHARED, f, 0);
    return std::vector<int>{};
  });
  // Network: a TCP listener and a client connected to it.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  Child server([&] { return std::vector<int>{lfd}; });
  ::close(lfd);
  Child client([&] {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) std::abort();
    return std::vector<int>{s};
  });
  // A parent and its child that share nothing (both map libc, /dev/null).
  Child parent([&] {
    forkIsolated({});
    return std::vector<int>{};
  });
  Scan scan = scanNode({});
  for (pid_t p : {a.pid(), b.pid(), c.pid(), server.pid(), client.pid(), parent.pid()}) expectAlone(scan, p);
  // TCP sockets are a property of the process.
  ASSERT_TRUE(scan.processes.count(server.pid()));
  const auto& socks = scan.processes.at(server.pid()).netSockets;
  ASSERT_FALSE(socks.empty());
  EXPECT_NE(socks[0].find("LISTEN"), std::string::npos) << socks[0];
  for (const auto& [pid, p] : scan.processes)
    if (p.ppid == parent.pid()) {
      expectAlone(scan, pid);
      ::kill(pid, SIGKILL);
    }
}

TEST(GroupingTest, MixedSceneExactPartition) {
  // Group 1: a pipe chain a - b - c. Group 2: d and e over a socketpair and
  // a shared anonymous mapping. f alone.
  int p1[2], p2[2], sv[2];
  ASSERT_EQ(::pipe(p1), 0);
  ASSERT_EQ(::pipe(p2), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Child a([&] { return std::vector<int>{p1[1]}; });
  Child b([&] { return std::vector<int>{p1[0], p2[1]}; });
  Child c([&] { return std::vector<int>{p2[0]}; });
  ::close(p1[0]);
  ::close(p1[1]);
  ::close(p2[0]);
  ::close(p2[1]);
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  Child d([&] { return std::vector<int>{sv[0]}; });
  Child e([&] { return std::vector<int>{sv[1]}; });
  ::munmap(m, 4096);
  ::close(sv[0]);
  ::close(sv[1]);
  Child f([&] { return std::vector<int>{}; });
  Scan scan = scanNode({});
  EXPECT_EQ(membersOf(scan, a.pid()), (std::set<pid_t>{a.pid(), b.pid(), c.pid()}));
  EXPECT_EQ(membersOf(scan, c.pid()), (std::set<pid_t>{a.pid(), b.pid(), c.pid()}));
  EXPECT_EQ(membersOf(scan, d.pid()), (std::set<pid_t>{d.pid(), e.pid()}));
  auto g2 = groupOf(scan, d.pid());
  ASSERT_TRUE(g2.ok());
  std::set<std::string> kinds;
  for (const auto& edge : g2->edges) kinds.insert(edge.kind);
  EXPECT_EQ(kinds, (std::set<std::string>{kUnixStream, kSharedAnon}));
  expectAlone(scan, f.pid());
  // Group ids are stable across scans.
  Scan again = scanNode({});
  EXPECT_EQ(groupOf(scan, a.pid())->id, groupOf(again, b.pid())->id);
}

TEST(GroupingTest, ScanSurvivesProcessesExitingMidScan) {
  PipePair pp = pipePair();
  Child& a = *pp.a;
  Child& b = *pp.b;
  // A zombie (exited, not reaped) and a process in a PID namespace of its
  // own sharing a pipe with a host process.
  pid_t zombie = ::fork();
  if (zombie == 0) ::_exit(0);
  // A zombie once it has exited (WNOWAIT leaves it unreaped); right after
  // fork it may still run.
  siginfo_t exited{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(zombie), &exited, WEXITED | WNOWAIT), 0);
  int q[2];
  ASSERT_EQ(::pipe(q), 0);
  Child host([&] { return std::vector<int>{q[0]}; });
  Child nsParent([&] {
    if (::unshare(CLONE_NEWPID) != 0) return std::vector<int>{};
    forkIsolated({q[1]});  // pid 1 of the new namespace
    return std::vector<int>{};
  });
  ::close(q[0]);
  ::close(q[1]);
  std::atomic<bool> stop{false};
  // Churn: short-lived processes with pipes, exiting all the time.
  std::thread churn([&] {
    while (!stop) {
      std::vector<pid_t> kids;
      for (int i = 0; i < 20; ++i) {
        int q[2];
        if (::pipe(q) != 0) continue;
        pid_t k = ::fork();
        if (k == 0) {
          ::usleep(static_cast<useconds_t>(1000 * (i % 5)));
          ::_exit(0);
        }
        ::close(q[0]);
        ::close(q[1]);
        kids.push_back(k);
      }
      for (pid_t k : kids) ::waitpid(k, nullptr, 0);
    }
  });
  for (int i = 0; i < 20; ++i) {
    Scan scan = scanNode({});
    EXPECT_EQ(membersOf(scan, a.pid()), (std::set<pid_t>{a.pid(), b.pid()}));
    EXPECT_FALSE(scan.processes.count(zombie)) << "zombies hold nothing and are left out";
    auto g = groupOf(scan, host.pid());
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->members.size(), 2u);
    EXPECT_EQ(g->verdict, "spans-containers") << "a pipe into another PID namespace crosses a container";
    for (pid_t m : g->members)
      if (m != host.pid()) {
        EXPECT_TRUE(startsWith(scan.processes.at(m).container, "pidns:"));
      }
  }
  stop = true;
  churn.join();
  ::waitpid(zombie, nullptr, 0);
  // The namespace's pid 1 is a grandchild: end it by pid, found by the scan.
  auto last = groupOf(scanNode({}), host.pid());
  if (last.ok())
    for (pid_t m : last->members)
      if (m != host.pid()) ::kill(m, SIGKILL);
}

TEST(GroupingTest, UnknownPidAndContainerAreNotFound) {
  Scan scan = scanNode({});
  EXPECT_EQ(groupOf(scan, 0x3ffffff).status().code(), Code::kNotFound);
  EXPECT_EQ(groupsOfContainer(scan, "no-such-container").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace lxmig::grouping
