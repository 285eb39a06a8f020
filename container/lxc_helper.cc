// lxmig-lxc: the halves of a checkpoint or a restore that run CRIU, each
// run by the agent as a process of its own.
//
//   lxmig-lxc restore LXC_PATH NAME IMAGES_DIR
//       liblxc's restore of a container. (Its checkpoint runs CRIU with
//       the options the agent builds, criu_dump.h, without this helper.)
//   lxmig-lxc dump-tree PID IMAGES_DIR [--sysv]
//       CRIU dump of a process tree of the host (lxmig adopt); the tasks are
//       left stopped, so that the caller either ends them (the copy runs in
//       a container) or lets them continue (SIGCONT) after a failure.
//       --sysv: the tree maps System V shared memory; CRIU runs in an IPC
//       namespace of its own, so that it dumps the tree's with it.
//   lxmig-lxc prune-shm INIT_PID [KEEP_SHMID...]
//       In the IPC namespace of INIT_PID, removes the System V segments no
//       process has attached, but those named; prints how many it removed.
//   lxmig-lxc restore-into INIT_PID IMAGES_DIR CRIU_HOME [unix:PID:FD:INODE...] [CGROUP_PROCS...]
//       CRIU restore of such a tree inside the running container whose init
//       is INIT_PID: this process joins the container's cgroups (the
//       cgroup.procs files given), its mount, network, IPC, UTS and PID
//       namespaces, and runs CRIU there, so the tasks keep their pids inside
//       the container; they are left stopped (SIGCONT them at the commit). CRIU_HOME (e.g. /opt/lxmig, "-" for none) is
//       the host directory of a CRIU installed outside /usr: it is mounted at the same path in the container for the
//       restore only. unix:PID:FD:INODE: a Unix socket the dump handed
//       over whole; this process takes it from the stopped original (fd FD
//       of host pid PID, which must still be socket:[INODE]) and CRIU
//       restores it from there (--inherit-fd).
//   lxmig-lxc dump-in INIT_PID PID IMAGES_DIR CRIU_HOME|- [unix:INODE...]
//       CRIU dump of the tree of PID (its pid in there) from inside the
//       container whose init is INIT_PID (lxmig merge): CRIU shares the
//       tree's namespaces and dumps none; the tasks are left stopped.
//       unix:INODE: a socket connected to another container of the merge,
//       handed over whole (CRIU's --external unix[INODE]; lxmig's
//       merge patch dumps it without looking for its peer).
//   lxmig-lxc copy-ipc FROM_INIT_PID TO_INIT_PID LIST
//       Makes every System V object of FROM's IPC namespace again in TO's,
//       same id, key, owner, mode and content (lxmig merge, ipc_copy.h);
//       LIST gets what it made. Exit 6: an id or key is taken in TO's.
//   lxmig-lxc drop-ipc INIT_PID LIST
//       Removes the objects LIST names from INIT's IPC namespace (a merge
//       rolled back).
//   lxmig-lxc last-pid INIT_PID N
//       The last pid of the container's PID namespace becomes N (its next
//       process gets N+1): lxmig-init starts the workload in its range.
//   lxmig-lxc bind-in INIT_PID HOST PATH ro|rw dir|file
//       Mounts the host's HOST (a directory, or a file such as a device
//       node) at PATH inside the running container (lxmig merge: a bind or
//       device of a merged container the kept one lacks). PATH is made
//       without following a link; one that exists must be an empty
//       directory (an empty regular file), so nothing of the container's
//       is hidden.
//   lxmig-lxc unbind-in INIT_PID PATH
//       Takes such a mount away again (a merge rolled back); none is fine.
//
//  - liblxc's restore forks the container's monitor from its caller and
//    keeps every inherited fd open in it; exec'd fresh, this process has
//    nothing of the agent's to leak.
//  - Each restore gets the CRIU options of its own (LXMIG_CRIU_RESTORE_OPTS,
//    read by the criu wrapper) in its own environment, so restores of
//    different containers run at once, and none waits for a lock another
//    holds.
//  - A dump of a tree (dump-tree, dump-in) reads the resource limits of
//    processes of any uid, also where root lacks CAP_SYS_RESOURCE: CRIU
//    runs with the rlimits shim preloaded (rlimits.h), set in this
//    process's environment only.
// It links liblxc and little else, so it starts in a few milliseconds (a
// restore runs in the frozen window).
//
// Exit codes: 0 done (a restored container is frozen, as dumped; a dumped
// one stays frozen), 1 the call failed (CRIU's logs say why), 2 usage,
// 3 no such container, 4 the rlimits shim is missing, 5 the namespaces or
// cgroups of the container could not be joined (stderr says why).
#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <lxc/lxccontainer.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ipc_copy.h"
#include "lxmig/base/sysvipc.h"
#include "rlimits.h"

namespace {

constexpr int kJoinFailed = 5;

int fail(const std::string& what) {
  std::fprintf(stderr, "lxmig-lxc: %s: %s\n", what.c_str(), std::strerror(errno));
  return kJoinFailed;
}

// Runs `criu ARGS...` (the wrapper in PATH) and returns 0 when it succeeded.
int runCriu(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string criu = "criu";
  argv.push_back(criu.data());
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) return fail("fork");
  if (child == 0) {
    ::execvp("criu", argv.data());
    std::fprintf(stderr, "lxmig-lxc: exec criu: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return fail("wait for criu");
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int dumpTree(const char* pid, const char* imagesDir, bool sysv) {
  if (auto shim = lxmig::container::preloadRlimitShim(); !shim.ok()) {
    std::fprintf(stderr, "lxmig-lxc: %s\n", shim.toString().c_str());
    return 4;
  }
  // CRIU dumps System V mappings only with the IPC namespace they live in,
  // and it dumps that namespace only when it differs from its own: run it
  // in an empty one. The restore then gives the tree an IPC namespace of
  // its own, which the container's init joins (lxmig-init, SIGUSR1).
  if (sysv && ::unshare(CLONE_NEWIPC) != 0) return fail("unshare the IPC namespace for CRIU");
  std::vector<std::string> args = {
      "dump",           "-t",  pid, "-D", imagesDir, "-o", "dump.log", "--manage-cgroups=ignore", "--leave-stopped",
      "--network-lock", "skip"};
  if (const char* v = std::getenv("LXMIG_CRIU_LOG_LEVEL")) args.push_back(std::string("-v") + v);
  return runCriu(args);
}

int openNs(const char* pid, const char* ns) {
  std::string p = std::string("/proc/") + pid + "/ns/" + ns;
  return ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
}

// mkdir -p of an absolute path below the current root, one component at a
// time, never following a link; returns an O_PATH fd of the last one.
int makePathNoFollow(const std::string& path) {
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  size_t at = 1;
  while (dir >= 0 && at < path.size()) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(at, end - at);
    at = end + 1;
    if (part.empty()) continue;
    if (::mkdirat(dir, part.c_str(), 0755) != 0 && errno != EEXIST) {
      ::close(dir);
      return -1;
    }
    int next = ::openat(dir, part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(dir);
    dir = next;
  }
  return dir;
}

// In the IPC namespace of INIT_PID: removes every System V segment that no
// process has attached and that is not in `keep` (a tree dumped with its
// IPC namespace brought every segment of the host along).
int pruneShm(int argc, char** argv) {
  int ns = openNs(argv[2], "ipc");
  if (ns < 0 || ::setns(ns, CLONE_NEWIPC) != 0) return fail(std::string("join the IPC namespace of pid ") + argv[2]);
  std::vector<long long> keep;
  for (int i = 3; i < argc; ++i) keep.push_back(std::atoll(argv[i]));
  auto rows = lxmig::readSysvTable("shm");  // the table of this IPC namespace
  if (!rows.ok()) {
    std::fprintf(stderr, "lxmig-lxc: %s\n", rows.status().message().c_str());
    return kJoinFailed;
  }
  std::vector<int> drop;
  for (const lxmig::SysvRow& r : *rows)
    if (std::find(keep.begin(), keep.end(), r.id) == keep.end() && r.get("nattch") == 0) drop.push_back(r.id);
  for (int id : drop)
    if (::shmctl(id, IPC_RMID, nullptr) != 0) return fail("remove System V segment " + std::to_string(id));
  std::printf("%zu\n", drop.size());
  return 0;
}

// Joins the container whose init is `init`: the cgroup.procs files given,
// its mount namespace (with CRIU_HOME of the host mounted at the same path,
// unless "-"), and its cgroup, network, IPC, UTS, PID and time namespaces
// (the PID and time ones for the children forked from here). 0 when joined.
int enterContainer(const char* init, const std::string& criuHome, const std::vector<std::string>& cgroupProcs) {
  int tree = -1;
  if (criuHome != "-") {
    tree = static_cast<int>(
        ::syscall(SYS_open_tree, AT_FDCWD, criuHome.c_str(), OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC));
    if (tree < 0) return fail("open_tree " + criuHome);
  }
  for (const auto& procs : cgroupProcs) {
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::dprintf(fd, "%d\n", ::getpid()) < 0) return fail("join " + procs);
    ::close(fd);
  }
  int mnt = openNs(init, "mnt"), net = openNs(init, "net"), ipc = openNs(init, "ipc"), uts = openNs(init, "uts"),
      pid = openNs(init, "pid"), time = openNs(init, "time"), cgroup = openNs(init, "cgroup");
  if (mnt < 0 || net < 0 || ipc < 0 || uts < 0 || pid < 0 || time < 0 || cgroup < 0)
    return fail(std::string("namespaces of pid ") + init);
  // Its cgroup namespace after its cgroups (the namespace's root is the
  // cgroup this process is in when it joins).
  if (::setns(cgroup, CLONE_NEWCGROUP) != 0) return fail("join the cgroup namespace");
  if (::setns(mnt, CLONE_NEWNS) != 0) return fail("join the mount namespace");
  if (::chdir("/") != 0) return fail("chdir /");
  if (tree >= 0) {
    int at = makePathNoFollow(criuHome);
    if (at < 0) return fail("mount point " + criuHome + " in the container");
    if (::syscall(SYS_move_mount, tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
      return fail("mount " + criuHome + " in the container");
    ::close(at);
    ::close(tree);
  }
  // The time namespace too: a container restored by CRIU has one of its
  // own (its clocks continue across the move). CRIU forked from here shares
  // it, so a dump holds none and a restore puts the tasks into it.
  if (::setns(net, CLONE_NEWNET) != 0 || ::setns(ipc, CLONE_NEWIPC) != 0 || ::setns(uts, CLONE_NEWUTS) != 0 ||
      ::setns(pid, CLONE_NEWPID) != 0 || ::setns(time, CLONE_NEWTIME) != 0)
    return fail("join the container's namespaces");
  for (int fd : {mnt, net, ipc, uts, pid, time, cgroup}) ::close(fd);
  return 0;
}

// Undoes enterContainer's mount of CRIU_HOME.
void leaveCriuHome(const std::string& criuHome) {
  if (criuHome != "-" && ::umount2(criuHome.c_str(), MNT_DETACH) != 0)
    std::fprintf(stderr, "lxmig-lxc: unmount %s in the container: %s\n", criuHome.c_str(), std::strerror(errno));
}

// `criu restore|dump ... -v` with the log level the agent's environment asks for.
void addLogLevel(std::vector<std::string>& args) {
  if (const char* v = std::getenv("LXMIG_CRIU_LOG_LEVEL")) args.push_back(std::string("-v") + v);
}

// "unix:A:B:C" (or "unix:A" for one field) into numbers, each in [0, max].
bool parseUnixArg(const char* arg, size_t fields, unsigned long long* out, const unsigned long long* max) {
  if (std::strncmp(arg, "unix:", 5) != 0) return false;
  const char* p = arg + 5;
  for (size_t i = 0; i < fields; ++i) {
    if (*p < '0' || *p > '9') return false;
    errno = 0;
    char* end = nullptr;
    out[i] = std::strtoull(p, &end, 10);
    if (errno != 0 || out[i] > max[i] || *end != (i + 1 < fields ? ':' : '\0')) return false;
    p = end + (i + 1 < fields ? 1 : 0);
  }
  return true;
}

// The socket a merge hands over: fd `fd` of the stopped host process
// `pid`, which must still be socket:[inode]; -1 (stderr says why) if not.
// The copy stays open across exec (CRIU's --inherit-fd reads it).
int takeHandedSocket(pid_t pid, int fd, unsigned long long inode) {
  const std::string what = "fd " + std::to_string(fd) + " of pid " + std::to_string(pid);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    fail("pidfd_open " + std::to_string(pid));
    return -1;
  }
  int sock = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  const int err = errno;
  ::close(pidfd);
  if (sock < 0) {
    errno = err;
    fail("take " + what);
    return -1;
  }
  struct stat st {};
  if (::fstat(sock, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != inode) {
    std::fprintf(stderr, "lxmig-lxc: %s is no longer socket:[%llu]\n", what.c_str(), inode);
    ::close(sock);
    return -1;
  }
  int flags = ::fcntl(sock, F_GETFD);
  if (flags < 0 || ::fcntl(sock, F_SETFD, flags & ~FD_CLOEXEC) != 0) {
    fail("keep " + what + " open for CRIU");
    ::close(sock);
    return -1;
  }
  return sock;
}

int restoreInto(int argc, char** argv) {
  const std::string criuHome = argv[4];
  // Handed sockets first, taken here on the host (the originals are host
  // pids); the rest are the cgroup.procs files to join.
  std::vector<std::string> inherit, cgroupProcs;
  for (int i = 5; i < argc; ++i) {
    if (std::strncmp(argv[i], "unix:", 5) != 0) {
      cgroupProcs.emplace_back(argv[i]);
      continue;
    }
    unsigned long long v[3] = {};
    const unsigned long long max[3] = {INT_MAX, INT_MAX, UINT64_MAX};
    if (!parseUnixArg(argv[i], 3, v, max)) {
      std::fprintf(stderr, "lxmig-lxc: bad handed socket %s (want unix:PID:FD:INODE)\n", argv[i]);
      return 2;
    }
    int sock = takeHandedSocket(static_cast<pid_t>(v[0]), static_cast<int>(v[1]), v[2]);
    if (sock < 0) return 1;
    inherit.push_back("fd[" + std::to_string(sock) + "]:socket:[" + std::to_string(v[2]) + "]");
  }
  // Opened here, on the host: CRIU reads the images through /proc/self/fd,
  // which reaches this directory from inside the container's mounts.
  int images = ::open(argv[3], O_RDONLY | O_DIRECTORY);
  if (images < 0) return fail(std::string("open ") + argv[3]);
  int rc = enterContainer(argv[2], criuHome, cgroupProcs);
  if (rc == 0) {
    std::string dir = "/proc/self/fd/" + std::to_string(images);
    std::vector<std::string> args = {
        "restore",        "-D",  dir, "-o", "restore.log", "--restore-detached", "--manage-cgroups=ignore",
        "--network-lock", "skip"};
    for (const auto& key : inherit) args.insert(args.end(), {"--inherit-fd", key});
    // Stopped until the caller's commit point: the host's copy is the one
    // until it is gone (SIGCONT then), and a failure before never lets
    // this copy run.
    args.push_back("--leave-stopped");
    addLogLevel(args);
    // The fork in runCriu puts CRIU into the container's PID namespace.
    rc = runCriu(args);
  }
  leaveCriuHome(criuHome);
  return rc;
}

// CRIU dump of the tree of PID (its pid inside the container whose init is
// INIT), run inside the container's namespaces, so that CRIU dumps none of
// them: the tree can be restored into another container (lxmig merge).
int dumpIn(int argc, char** argv) {
  const std::string criuHome = argv[5];
  std::vector<std::string> external;
  for (int i = 6; i < argc; ++i) {
    unsigned long long inode = 0;
    const unsigned long long max = UINT64_MAX;
    if (!parseUnixArg(argv[i], 1, &inode, &max)) {
      std::fprintf(stderr, "lxmig-lxc: bad handed socket %s (want unix:INODE)\n", argv[i]);
      return 2;
    }
    external.push_back("unix[" + std::to_string(inode) + "]");
  }
  int images = ::open(argv[4], O_RDONLY | O_DIRECTORY);
  if (images < 0) return fail(std::string("open ") + argv[4]);
  // The shim is opened here too, and preloaded through /proc/self/fd.
  if (auto shim = lxmig::container::preloadRlimitShim(); !shim.ok()) {
    std::fprintf(stderr, "lxmig-lxc: %s\n", shim.toString().c_str());
    return 4;
  }
  int shim = ::open(std::getenv("LD_PRELOAD"), O_RDONLY);
  if (shim < 0) return fail(std::string("open ") + std::getenv("LD_PRELOAD"));
  int rc = enterContainer(argv[2], criuHome, {});
  if (rc == 0) {
    std::string fd = "/proc/self/fd/";
    ::setenv("LD_PRELOAD", (fd + std::to_string(shim)).c_str(), 1);
    std::vector<std::string> args = {"dump",
                                     "-t",
                                     argv[3],
                                     "-D",
                                     fd + std::to_string(images),
                                     "-o",
                                     "dump.log",
                                     "--manage-cgroups=ignore",
                                     "--leave-stopped",
                                     "--network-lock",
                                     "skip"};
    for (const auto& e : external) args.insert(args.end(), {"--external", e});
    addLogLevel(args);
    rc = runCriu(args);
  }
  leaveCriuHome(criuHome);
  return rc;
}

// The images directory and the files in it (CRIU's images are flat) given
// to `owner`, without following a link. 0 when done.
int chownImages(const char* dir, uid_t owner) {
  int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(std::string("open ") + dir);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return fail(std::string("list ") + dir);
  }
  int rc = ::fchown(fd, owner, owner) == 0 ? 0 : fail(std::string("chown ") + dir);
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (rc == 0 && ::fchownat(fd, e->d_name, owner, owner, AT_SYMLINK_NOFOLLOW) != 0)
      rc = fail(std::string("chown ") + dir + "/" + e->d_name);
  }
  ::closedir(d);
  return rc;
}

// Sets the last pid of the PID namespace of INIT to N: a child forked in
// that namespace writes the host's /proc/sys/kernel/ns_last_pid (the
// container's is read-only), which acts on the writer's PID namespace.
int setLastPid(char** argv) {
  char* end = nullptr;
  long n = std::strtol(argv[3], &end, 10);
  if (*end != '\0' || n < 1 || n > (1L << 22)) {
    std::fprintf(stderr, "lxmig-lxc: `%s` is not a pid\n", argv[3]);
    return 2;
  }
  int pid = openNs(argv[2], "pid");
  if (pid < 0 || ::setns(pid, CLONE_NEWPID) != 0) return fail(std::string("join the PID namespace of ") + argv[2]);
  pid_t child = ::fork();
  if (child < 0) return fail("fork");
  if (child == 0) {
    int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    ::_exit(fd >= 0 && ::dprintf(fd, "%ld", n) > 0 ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return fail("wait");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "lxmig-lxc: could not write ns_last_pid in the PID namespace of %s\n", argv[2]);
    return 1;
  }
  return 0;
}

// The directory PATH's last component is in, made like makePathNoFollow;
// `leaf` gets that component.
int parentNoFollow(const std::string& path, std::string* leaf) {
  auto slash = path.rfind('/');
  *leaf = path.substr(slash + 1);
  if (leaf->empty() || *leaf == "." || *leaf == "..") return -1;
  return makePathNoFollow(slash == 0 ? "/" : path.substr(0, slash));
}

// Whether the directory at `at` (an O_PATH fd) has no entry.
bool emptyDir(int at) {
  int fd = ::openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!d) {
    if (fd >= 0) ::close(fd);
    return false;
  }
  bool empty = true;
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  ::closedir(d);
  return empty;
}

int bindIn(char** argv) {
  const std::string host = argv[3], path = argv[4];
  const bool rw = std::strcmp(argv[5], "rw") == 0, file = std::strcmp(argv[6], "file") == 0;
  if (host.empty() || host[0] != '/' || path.size() < 2 || path[0] != '/') return fail("absolute paths wanted");
  // Taken on the host, before this process enters the container.
  int tree = static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, host.c_str(), OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC));
  if (tree < 0) return fail("open_tree " + host);
  if (!rw) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
      return fail("make the mount of " + host + " read-only");
  }
  int mnt = openNs(argv[2], "mnt");
  if (mnt < 0 || ::setns(mnt, CLONE_NEWNS) != 0) return fail(std::string("join the mount namespace of pid ") + argv[2]);
  if (::chdir("/") != 0) return fail("chdir /");
  int at = -1;
  if (file) {
    std::string leaf;
    int dir = parentNoFollow(path, &leaf);
    if (dir < 0) return fail("the directory of " + path + " in the container");
    int made = ::openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (made >= 0) ::close(made);
    at = ::openat(dir, leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (at < 0 || ::fstat(at, &st) != 0) return fail(path + " in the container");
    if (!S_ISREG(st.st_mode) || st.st_size != 0) {
      std::fprintf(stderr, "lxmig-lxc: %s exists in the container and is not an empty file\n", path.c_str());
      return 1;
    }
    ::close(dir);
  } else {
    at = makePathNoFollow(path);
    if (at < 0) return fail(path + " in the container");
    if (!emptyDir(at)) {
      std::fprintf(stderr, "lxmig-lxc: %s exists in the container and is not an empty directory\n", path.c_str());
      return 1;
    }
  }
  if (::syscall(SYS_move_mount, tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
    return fail("mount " + host + " at " + path + " in the container");
  return 0;
}

int unbindIn(char** argv) {
  int mnt = openNs(argv[2], "mnt");
  if (mnt < 0 || ::setns(mnt, CLONE_NEWNS) != 0) return fail(std::string("join the mount namespace of pid ") + argv[2]);
  if (::chdir("/") != 0) return fail("chdir /");
  if (::umount2(argv[3], MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT)
    return fail(std::string("unmount ") + argv[3] + " in the container");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if ((argc == 4 || (argc == 5 && std::strcmp(argv[4], "--sysv") == 0)) && std::strcmp(argv[1], "dump-tree") == 0)
    return dumpTree(argv[2], argv[3], argc == 5);
  if (argc >= 3 && std::strcmp(argv[1], "prune-shm") == 0) return pruneShm(argc, argv);
  if (argc >= 5 && std::strcmp(argv[1], "restore-into") == 0) return restoreInto(argc, argv);
  if (argc >= 6 && std::strcmp(argv[1], "dump-in") == 0) return dumpIn(argc, argv);
  if (argc == 5 && std::strcmp(argv[1], "copy-ipc") == 0) return lxmig::container::copyIpc(argv[2], argv[3], argv[4]);
  if (argc == 4 && std::strcmp(argv[1], "drop-ipc") == 0) return lxmig::container::dropIpc(argv[2], argv[3]);
  if (argc == 4 && std::strcmp(argv[1], "last-pid") == 0) return setLastPid(argv);
  if (argc == 7 && std::strcmp(argv[1], "bind-in") == 0) return bindIn(argv);
  if (argc == 4 && std::strcmp(argv[1], "unbind-in") == 0) return unbindIn(argv);
  if (argc != 5 || std::strcmp(argv[1], "restore") != 0) {
    std::fprintf(
        stderr,
        "usage: lxmig-lxc restore LXC_PATH NAME IMAGES_DIR\n"
        "       lxmig-lxc dump-tree PID IMAGES_DIR [--sysv]\n"
        "       lxmig-lxc prune-shm INIT_PID [KEEP_SHMID...]\n"
        "       lxmig-lxc copy-ipc FROM_INIT_PID TO_INIT_PID LIST\n"
        "       lxmig-lxc drop-ipc INIT_PID LIST\n"
        "       lxmig-lxc restore-into INIT_PID IMAGES_DIR CRIU_HOME|- [unix:PID:FD:INODE...] [CGROUP_PROCS...]\n"
        "       lxmig-lxc dump-in INIT_PID PID IMAGES_DIR CRIU_HOME|- [unix:INODE...]\n"
        "       lxmig-lxc last-pid INIT_PID N\n"
        "       lxmig-lxc bind-in INIT_PID HOST PATH ro|rw dir|file\n"
        "       lxmig-lxc unbind-in INIT_PID PATH\n");
    return 2;
  }
  lxc_container* c = lxc_container_new(argv[3], argv[2]);
  if (!c || !c->is_defined(c)) {
    std::fprintf(stderr, "lxmig-lxc: container `%s` is not defined in %s\n", argv[3], argv[2]);
    if (c) lxc_container_put(c);
    return 3;
  }
  // A container with a user namespace of its own (lxc.idmap): CRIU opens
  // some images from inside it, as the container's root (host id BASE).
  char map[512] = "";
  if (c->get_config_item(c, "lxc.idmap", map, sizeof map) > 0) {
    unsigned long inside = 1, base = 0, size = 0;
    for (char* line = std::strtok(map, "\n"); line; line = std::strtok(nullptr, "\n"))
      if (std::sscanf(line, "u %lu %lu %lu", &inside, &base, &size) == 3 && inside == 0) break;
    if (inside == 0 && base > 0 && base <= UINT32_MAX && chownImages(argv[4], static_cast<uid_t>(base)) != 0) {
      lxc_container_put(c);
      return 1;
    }
  }
  migrate_opts o{};
  o.directory = argv[4];
  c->want_daemonize(c, true);
  c->want_close_all_fds(c, true);
  const int rc = c->migrate(c, MIGRATE_RESTORE, &o, sizeof o) == 0 ? 0 : 1;
  lxc_container_put(c);
  return rc;
}
