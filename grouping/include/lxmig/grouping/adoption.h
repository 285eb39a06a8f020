// What `lxmig adopt` may take: a group of processes of the host, continued
// inside one new container. Everything that would break there is refused
// before anything is touched, one line per reason, naming the process and
// the object (docs/architecture.md, "Adopt and merge").
//
//   auto facts = grouping::readAdoptionFacts("/proc", group.members);
//   auto plan = grouping::planAdoption(group, scan.processes, facts, rules);
//   if (!plan.refusals.empty()) ...   // nothing was touched
//
// The rules are pure (unit-tested on literal facts); readAdoptionFacts is
// the only part that reads /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lxmig/grouping/ipc_graph.h"

namespace lxmig::grouping {

// One path a process uses: how ("fd 3", "cwd", "root", "exe", "map
// 7f00-7f10"; "fd 3 (another mount namespace)" for an fd on a mount that
// is not in the process's mount namespace) and the kernel's name for it
// (readlink of /proc/PID/fd/N, or a maps path).
struct UsedPath {
  std::string how;
  std::string path;
};

struct AdoptionFacts {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  std::string comm;
  bool kernelThread = false;
  std::map<std::string, uint64_t> namespaces;  // "mnt" -> inode, for kAdoptNamespaces
  std::vector<UsedPath> paths;
  std::vector<uint64_t> sysvShm;  // System V segments it maps (shmid)
  bool gone = false;              // exited before it was read (short-lived processes come and go)
  std::string problem;            // what could not be read ("" when all was)
};

// The namespaces an adopted process must share with the agent (the host's):
// the container replaces mount, network, IPC, UTS and PID; the others it
// shares with the host as every lxmig container does.
inline const std::vector<std::string> kAdoptNamespaces = {"mnt", "net", "pid", "ipc", "uts", "user", "cgroup", "time"};

// The kAdoptNamespaces of a process ("self": the caller's), inode by name;
// 0 for one that cannot be read.
std::map<std::string, uint64_t> namespacesOf(const std::string& procRoot, const std::string& who);

// Reads the facts of each pid (a vanished pid gets a `problem`).
std::map<pid_t, AdoptionFacts> readAdoptionFacts(const std::string& procRoot, const std::vector<pid_t>& pids);

struct AdoptionRules {
  std::map<std::string, uint64_t> hostNamespaces;  // the agent's own, same keys as AdoptionFacts
  pid_t agentPid = 0;
  // Host directories the container sees at the same path: the system
  // directories every container binds, and the operator's --bind DIR.
  std::vector<std::string> visibleDirs;
  // Device nodes the node offers to containers (agent config `devices`).
  std::vector<std::string> offeredDevices;
  // lxmig merge: the container whose processes are taken (`from`, its
  // namespaces in hostNamespaces, its view of paths in visibleDirs: what
  // `into` sees at the same path) and the one they join. A FIFO or a
  // shared file mapping may then link the tree to processes outside it
  // when its path is visible: both stay on this kernel, reopened by path.
  std::string from, into;
  // lxmig merge: `from`'s addresses, which `into` takes on: a socket bound
  // to one of them keeps working.
  std::vector<std::string> carriedAddresses;
  // lxmig merge with a CRIU that hands a Unix socket over whole
  // (node::criuHandsOverUnixPeers): a connection between a process of the
  // tree and one of these containers (the kept one, the others merged with
  // it) is carried, its end in the tree passed to the restore as it is.
  std::vector<std::string> unixPeersIn;
};

// One end of a Unix connection that a merge hands over whole: the socket
// the tree's process `pid` holds at `fd`, whose peer is in another
// container of the merge. CRIU's dump names it external, its restore takes
// this very socket (its peer and queued bytes stay in the kernel).
struct HandedSocket {
  pid_t pid = 0;
  int fd = -1;
  uint64_t inode = 0;
};

// The system directories of an lxmig container (container/lxc_host.cc),
// with the rootfs's links into /usr.
inline const std::vector<std::string> kContainerSystemDirs = {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64"};

struct AdoptionPlan {
  pid_t root = 0;                    // the root of the process tree taken
  std::vector<pid_t> members;        // the tree's processes (the group's below root), sorted
  std::vector<std::string> devices;  // offered device nodes the members hold open: bound into the container
  // POSIX shared memory files directly in /dev/shm that the members map or
  // hold: the container's /dev/shm gets a copy while the tree is stopped.
  std::vector<std::string> shmFiles;
  // System V segments the members map: CRIU carries them in an IPC
  // namespace of the tree's own, which the container's init then joins.
  std::vector<uint64_t> sysvShm;
  std::vector<HandedSocket> handedSockets;  // AdoptionRules::unixPeersIn
  std::vector<std::string> refusals;        // one line each; empty: the group can be adopted
};

// What adopt takes is one process tree (CRIU dumps a process with all its
// descendants): for `requested` > 0 the tree whose root is the topmost
// ancestor of `requested` in its group; for 0 the group's member heading
// the largest tree.
pid_t adoptionRoot(const Scan& scan, const Group& group, pid_t requested);
// root and all its descendants, sorted.
std::vector<pid_t> processTree(const Scan& scan, pid_t root);

// Pure: checks the tree under `root` (`facts` must cover it). An IPC edge
// from the tree to any other process is a refusal, and so is whatever a
// member holds that the container could not carry.
AdoptionPlan planAdoption(const Scan& scan, pid_t root, const std::map<pid_t, AdoptionFacts>& facts,
                          const AdoptionRules& rules);

}  // namespace lxmig::grouping
