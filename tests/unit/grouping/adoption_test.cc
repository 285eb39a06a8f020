// lxmig adopt's rules on literal processes, edges and facts (no kernel):
// what is taken (one process tree) and each reason to refuse, one line each.
#include <gtest/gtest.h>

#include "lxmig/grouping/adoption.h"

namespace lxmig::grouping {
namespace {

constexpr uint64_t kHostNs = 4026531840;

struct World {
  Scan scan;
  std::map<pid_t, AdoptionFacts> facts;
  AdoptionRules rules;

  World() {
    for (const auto& ns : kAdoptNamespaces) rules.hostNamespaces[ns] = kHostNs;
    rules.agentPid = 999;
    rules.visibleDirs = kContainerSystemDirs;
    rules.visibleDirs.push_back("/srv/app");
    rules.offeredDevices = {"/dev/fuse"};
  }
  // A healthy host process: session and group of `sid`, cwd /srv/app.
  AdoptionFacts& add(pid_t pid, pid_t ppid, pid_t sid, const std::string& comm) {
    Process p;
    p.pid = pid;
    p.ppid = ppid;
    p.comm = comm;
    scan.processes[pid] = p;
    AdoptionFacts f;
    f.pid = pid;
    f.ppid = ppid;
    f.session = f.pgrp = sid;
    f.comm = comm;
    for (const auto& ns : kAdoptNamespaces) f.namespaces[ns] = kHostNs;
    f.paths = {{"cwd", "/srv/app"}, {"root", "/"}, {"exe", "/usr/bin/" + comm}, {"fd 0", "/dev/null"}};
    return facts[pid] = f;
  }
  void edge(const std::string& kind, pid_t a, pid_t b, const std::string& path = "") {
    Edge e;
    e.kind = kind;
    e.object = kind + ":[" + std::to_string(a * 100 + b) + "]";
    e.path = path;
    e.a = {a, "fd 3"};
    e.b = {b, "fd 4"};
    scan.edges.push_back(e);
  }
  AdoptionPlan plan(pid_t root) { return planAdoption(scan, root, facts, rules); }
};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool has(const AdoptionPlan& p, const std::string& part) {
  for (const auto& r : p.refusals)
    if (r.find(part) != std::string::npos) return true;
  return false;
}

TEST(Adoption, TakesTheWholeTreeWhenEverythingIsVisible) {
  World w;
  w.add(100, 1, 100, "master");
  w.add(101, 100, 100, "worker");
  w.add(102, 100, 100, "worker");
  w.add(103, 101, 100, "helper");  // a child without IPC: CRIU dumps it too
  w.add(200, 1, 200, "other");
  w.edge(kUnixStream, 100, 101);
  w.edge(kUnixStream, 100, 102);
  auto p = w.plan(100);
  EXPECT_TRUE(p.refusals.empty()) << joined(p.refusals);
  EXPECT_EQ(p.root, 100);
  EXPECT_EQ(p.members, (std::vector<pid_t>{100, 101, 102, 103}));
}

TEST(Adoption, RootIsTheTopmostAncestorInTheGroup) {
  World w;
  w.add(100, 1, 100, "master");
  w.add(101, 100, 100, "worker");
  w.add(102, 101, 100, "leaf");
  w.edge(kPipe, 100, 101);
  w.edge(kPipe, 101, 102);
  w.scan.groups = buildGroups(w.scan.processes, w.scan.edges);
  ASSERT_EQ(w.scan.groups.size(), 1u);
  EXPECT_EQ(adoptionRoot(w.scan, w.scan.groups[0], 102), 100);
  EXPECT_EQ(adoptionRoot(w.scan, w.scan.groups[0], 0), 100);
  // A process that shares nothing with its parent is its own root.
  Group alone;
  alone.members = {102};
  EXPECT_EQ(adoptionRoot(w.scan, alone, 102), 102);
}

TEST(Adoption, RefusesAnEdgeToAProcessOutsideTheTree) {
  World w;
  w.add(100, 1, 100, "reader");
  w.add(300, 1, 300, "writer");
  w.edge(kFifo, 100, 300, "/srv/app/fifo");
  auto p = w.plan(100);
  ASSERT_EQ(p.refusals.size(), 1u) << joined(p.refusals);
  EXPECT_TRUE(has(p,
                  "pid 100 (reader) shares fifo /srv/app/fifo (fd 3) with pid 300 (writer), which is outside the "
                  "process tree of pid 100 (reader)"))
      << joined(p.refusals);
}

TEST(Adoption, RefusesASessionOrProcessGroupOutsideTheTree) {
  World w;
  w.add(50, 1, 50, "shell");
  w.add(100, 50, 50, "job").pgrp = 100;
  auto p = w.plan(100);
  EXPECT_TRUE(has(p, "pid 100 (job) is in the session of pid 50 (shell), outside its process tree"))
      << joined(p.refusals);
  World g;
  g.add(100, 1, 100, "leader");
  g.add(101, 100, 100, "child").pgrp = 77;
  EXPECT_TRUE(has(g.plan(100), "pid 101 (child) is in the process group of pid 77, outside its process tree"));
}

TEST(Adoption, RefusesConnectionsAndHostAddressesButNotWildcardListeners) {
  World w;
  w.add(100, 1, 100, "srv");
  w.scan.processes[100].netSockets = {"tcp 0.0.0.0:80 LISTEN (fd 5)", "tcp6 [::]:80 LISTEN (fd 6)",
                                      "udp 127.0.0.1:53 (fd 7)", "tcp 0.0.0.0:0 -> 0.0.0.0:0 CLOSE (fd 8)"};
  EXPECT_TRUE(w.plan(100).refusals.empty()) << joined(w.plan(100).refusals);
  w.scan.processes[100].netSockets.push_back("tcp 10.0.0.5:5432 -> 10.0.0.9:40000 ESTABLISHED (fd 9)");
  w.scan.processes[100].netSockets.push_back("tcp 192.168.1.2:8080 LISTEN (fd 10)");
  auto p = w.plan(100);
  ASSERT_EQ(p.refusals.size(), 2u) << joined(p.refusals);
  EXPECT_TRUE(has(p, "holds a connection (tcp 10.0.0.5:5432 -> 10.0.0.9:40000 ESTABLISHED (fd 9))"));
  EXPECT_TRUE(has(p, "has a socket bound to the host address 192.168.1.2"));
}

TEST(Adoption, RefusesFilesTheContainerWouldNotSeeWithTheBindThatHelps) {
  World w;
  auto& f = w.add(100, 1, 100, "db");
  f.paths.push_back({"fd 4", "/var/lib/db/data/base/1"});
  f.paths.push_back({"fd 5", "/var/lib/db/data/base/2"});
  f.paths.push_back({"map 7f00-7f10", "/usr/lib/x86_64-linux-gnu/libc.so.6"});
  f.paths.push_back({"fd 6", "/srv/app/log"});
  f.paths.push_back({"fd 7", "/srv/app/old (deleted)"});
  f.paths.push_back({"fd 8", "/dev/pts/3"});
  f.paths.push_back({"map 7f20-7f30", "/dev/zero (deleted)"});
  f.paths.push_back({"map 7f40-7f50", "/memfd:pool (deleted)"});
  f.paths.push_back({"fd 9", "pipe:[55]"});
  f.paths.push_back({"fd 10 (another mount namespace)", "/dev/null"});
  f.paths.push_back({"fd 11", "/srv/evil\nlxmig: adopt refused: fake/x"});
  auto p = w.plan(100);
  ASSERT_EQ(p.refusals.size(), 5u) << joined(p.refusals);
  for (const auto& r : p.refusals) EXPECT_EQ(r.find('\n'), std::string::npos) << "one line: " << r;
  EXPECT_TRUE(has(p, "uses /srv/evil?lxmig: adopt refused: fake (fd 11)"));
  EXPECT_TRUE(has(p, "holds /dev/null (fd 10) opened in another mount namespace"));
  EXPECT_TRUE(has(p,
                  "uses /var/lib/db/data/base (fd 4, fd 5), which the container would not see (add --bind "
                  "/var/lib/db/data/base)"));
  EXPECT_TRUE(has(p, "uses the deleted file /srv/app/old (fd 7)"));
  EXPECT_TRUE(has(p, "uses the terminal /dev/pts/3 (fd 8)"));
}

TEST(Adoption, BindsOfferedDevicesAndRefusesOthers) {
  World w;
  auto& f = w.add(100, 1, 100, "sshfs");
  f.paths.push_back({"fd 5", "/dev/fuse"});
  f.paths.push_back({"fd 6", "/dev/kvm"});
  auto p = w.plan(100);
  EXPECT_EQ(p.devices, (std::vector<std::string>{"/dev/fuse"}));
  ASSERT_EQ(p.refusals.size(), 1u) << joined(p.refusals);
  EXPECT_TRUE(has(p, "uses the device /dev/kvm (fd 6), which this node does not offer to containers"));
}

TEST(Adoption, RefusesContainersOtherNamespacesChrootsTheAgentAndSysV) {
  World w;
  w.add(100, 1, 100, "a");
  w.add(101, 100, 100, "b").namespaces["net"] = 5;
  w.add(102, 100, 100, "c");
  w.scan.processes[102].container = "web";
  w.add(103, 100, 100, "d").paths.push_back({"root", "/jail"});
  w.add(999, 100, 100, "lxmigd");
  w.add(104, 100, 100, "e");
  w.edge(kMqueue, 100, 104);
  auto p = w.plan(100);
  EXPECT_TRUE(has(p, "pid 101 (b) is in a net namespace of its own (net:[5])")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "pid 102 (c) runs in container web"));
  EXPECT_TRUE(has(p, "pid 103 (d) runs chrooted in /jail"));
  EXPECT_TRUE(has(p, "pid 999 (lxmigd) is lxmigd itself"));
  EXPECT_TRUE(has(p, "pid 100 (a) shares mqueue"));
}

TEST(Adoption, CarriesSharedMemoryOfTheTree) {
  World w;
  auto& a = w.add(100, 1, 100, "postgres");
  a.paths.push_back({"map 7f20-7f30", "/dev/shm/PostgreSQL.1234"});
  auto& b = w.add(101, 100, 101, "checkpointer");  // a session of its own, inside the tree
  b.paths.push_back({"fd 5", "/dev/shm/PostgreSQL.99"});
  w.edge(kPosixShm, 100, 101, "/dev/shm/PostgreSQL.1234");
  auto p = w.plan(100);
  EXPECT_TRUE(p.refusals.empty()) << joined(p.refusals);
  EXPECT_EQ(p.shmFiles, (std::vector<std::string>{"/dev/shm/PostgreSQL.1234", "/dev/shm/PostgreSQL.99"}));
  // Shared with a process outside the tree: refused like any IPC.
  w.add(300, 1, 300, "other");
  w.edge(kPosixShm, 101, 300, "/dev/shm/PostgreSQL.99");
  EXPECT_TRUE(has(w.plan(100), "shares posix-shm /dev/shm/PostgreSQL.99"));
  // System V segments of the tree are carried too; shared with a process
  // outside it, refused like any IPC.
  World v;
  auto& pm = v.add(100, 1, 100, "postgres");
  pm.paths.push_back({"map 7f00-7f10", "/SYSV00a76183 (deleted)"});
  pm.sysvShm = {30};
  v.add(101, 100, 100, "checkpointer").sysvShm = {30};
  v.edge(kSysvShm, 100, 101);
  auto sv = v.plan(100);
  EXPECT_TRUE(sv.refusals.empty()) << joined(sv.refusals);
  EXPECT_EQ(sv.sysvShm, (std::vector<uint64_t>{30}));
  v.add(300, 1, 300, "other").sysvShm = {30};
  v.edge(kSysvShm, 100, 300);
  EXPECT_TRUE(has(v.plan(100), "pid 100 (postgres) shares sysv-shm"));
  // Deleted or nested /dev/shm files are not carried.
  World d;
  d.add(100, 1, 100, "x").paths.push_back({"fd 3", "/dev/shm/gone (deleted)"});
  EXPECT_TRUE(has(d.plan(100), "only files directly in /dev/shm that still exist are carried"));
}

// lxmig merge uses the same rules for each tree of the container merged
// (AdoptionRules::from): its processes belong to that container, and a
// FIFO or shared file mapping whose path both containers see may link the
// tree to what stays outside it (both stay on this kernel).
struct MergeWorld : World {
  MergeWorld() {
    rules.from = "producer";
    rules.into = "consumer";
    rules.visibleDirs = kContainerSystemDirs;
    rules.visibleDirs.push_back("/shared");
    rules.carriedAddresses = {"10.200.1.11"};  // producer's, which consumer takes on
  }
  AdoptionFacts& addIn(pid_t pid, pid_t ppid, pid_t sid, const std::string& comm, const std::string& container) {
    AdoptionFacts& f = add(pid, ppid, sid, comm);
    scan.processes[pid].container = container;
    f.paths[0] = {"cwd", "/"};
    return f;
  }
};

TEST(Merge, AFifoOfASharedDirectoryMayLinkTheTreeToTheOtherContainer) {
  MergeWorld w;
  w.addIn(11000, 50, 11000, "seq", "producer");
  w.addIn(23000, 60, 23000, "sh", "consumer");
  w.edge(kFifo, 11000, 23000, "/shared/fifo");
  w.edge(kIpcNamespace, 11000, 50);  // its init: every process of a container shares its IPC namespace
  auto p = w.plan(11000);
  EXPECT_TRUE(p.refusals.empty()) << joined(p.refusals);
  EXPECT_EQ(p.members, (std::vector<pid_t>{11000}));
}

TEST(Merge, RefusesWhatTheKeptContainerWouldNotHave) {
  MergeWorld w;
  w.addIn(11000, 50, 11000, "sh", "producer");
  w.addIn(11001, 11000, 11000, "worker", "producer").paths.push_back({"fd 5", "/var/lib/own/state"});
  w.addIn(23000, 60, 23000, "sh", "consumer");
  w.addIn(30000, 70, 30000, "stranger", "third");
  w.edge(kFifo, 11000, 23000, "/tmp/private-fifo");  // in the merged container's own writable area
  w.edge(kUnixStream, 11001, 23000);                 // a connection between the two: not carried
  // Its own address comes along; one it does not have (IP_FREEBIND) not.
  w.scan.processes[11001].netSockets = {"tcp 10.200.1.11:80 LISTEN (fd 6)", "tcp 10.200.9.9:81 LISTEN (fd 7)"};
  w.add(11002, 11000, 11000, "intruder");  // a host process below it (not the container's)
  auto p = w.plan(11000);
  EXPECT_TRUE(has(p, "pid 11000 (sh) shares fifo /tmp/private-fifo")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "only FIFOs and files in directories both containers bind")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "pid 11001 (worker) shares unix-stream")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "cannot carry a Unix socket connected to another container")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "uses /var/lib/own (fd 5), which consumer does not see")) << joined(p.refusals);
  EXPECT_FALSE(has(p, "10.200.1.11:80")) << joined(p.refusals);
  EXPECT_TRUE(
      has(p, "has a socket bound to 10.200.9.9 (tcp 10.200.9.9:81 LISTEN (fd 7)), an address producer does not"))
      << joined(p.refusals);
  EXPECT_TRUE(has(p, "pid 11002 (intruder) is not a process of producer")) << joined(p.refusals);
  EXPECT_FALSE(has(p, "adopt")) << joined(p.refusals);
}

// With a CRIU that hands a Unix socket over whole, a connection between
// the tree and another container of the merge is carried: the tree's end
// (its holder, fd and inode) goes to the dump and the restore. Anything
// else Unix still is refused, each with what would make it work.
TEST(Merge, AUnixConnectionToAnotherContainerOfTheMergeIsHandedOver) {
  MergeWorld w;
  w.rules.unixPeersIn = {"consumer", "third"};
  w.addIn(11000, 50, 11000, "client", "producer");
  w.addIn(11001, 11000, 11000, "worker", "producer");
  w.addIn(23000, 60, 23000, "server", "consumer");
  w.addIn(30000, 70, 30000, "other", "third");
  w.addIn(40000, 80, 40000, "stranger", "fourth");
  auto connect = [&](const std::string& kind, pid_t a, const std::string& aHow, uint64_t aIno, pid_t b, uint64_t bIno) {
    Edge e;
    e.kind = kind;
    e.object = "socket:[" + std::to_string(aIno) + "]<->socket:[" + std::to_string(bIno) + "]";
    e.a = {a, aHow};
    e.b = {b, "fd 9"};
    w.scan.edges.push_back(e);
  };
  connect(kUnixStream, 11000, "fd 5", 501, 23000, 502);  // the tree's end is e.a
  connect(kUnixDgram, 23000, "fd 6", 601, 11001, 602);   // ... and e.b (held at fd 9)
  connect(kUnixStream, 11001, "fd 7", 701, 30000, 702);  // another container of the merge
  auto p = w.plan(11000);
  EXPECT_TRUE(p.refusals.empty()) << joined(p.refusals);
  ASSERT_EQ(p.handedSockets.size(), 3u);
  EXPECT_EQ(p.handedSockets[0].pid, 11000);
  EXPECT_EQ(p.handedSockets[0].fd, 5);
  EXPECT_EQ(p.handedSockets[0].inode, 501u);
  EXPECT_EQ(p.handedSockets[1].pid, 11001);
  EXPECT_EQ(p.handedSockets[1].fd, 9);
  EXPECT_EQ(p.handedSockets[1].inode, 602u);
  EXPECT_EQ(p.handedSockets[2].inode, 701u);

  // A container outside the merge, a connection still in a listener's
  // queue, and evidence that names no fd: refused, nothing handed.
  connect(kUnixStream, 11001, "fd 8", 801, 40000, 802);
  connect(kUnixListener, 11000, "fd 10", 901, 23000, 902);
  connect(kUnixStream, 11001, "map 7f00-7f10", 1001, 23000, 1002);
  p = w.plan(11000);
  EXPECT_TRUE(has(p, "pid 11001 (worker) shares unix-stream")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "carries a Unix connection only between the containers it merges")) << joined(p.refusals);
  EXPECT_TRUE(has(p, "not while it waits in the listener's queue: merge again in a moment")) << joined(p.refusals);
  EXPECT_EQ(p.handedSockets.size(), 3u);
  EXPECT_EQ(p.refusals.size(), 3u) << joined(p.refusals);
}

}  // namespace
}  // namespace lxmig::grouping
