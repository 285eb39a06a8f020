// The agent's only door to liblxc: defines, starts, freezes, dumps, restores
// and destroys the application containers of one node.
//
// On-disk layout (all under the node's lxc_path):
//   <lxc_path>/<name>/config       LXC configuration written by define()
//   <lxc_path>/<name>/rootfs/      the writable area (tmp, var, run, data) and
//                                  mount points for read-only host binds
//   <lxc_path>/<name>/lxmig.json   lxmig's own record (spec), marks ownership
// Cgroups: <cgroup_parent>/payload.<name> and <cgroup_parent>/monitor.<name>
// in every hierarchy, so several simulated nodes can share one kernel.
#pragma once

#include "lxmig/base/process.h"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::container {

struct Bind {
  std::string hostPath;
  std::string containerPath;
  bool readOnly = true;
};

// Bounds of a long liblxc call run by the helper (a restore).
struct CallLimits {
  int64_t timeoutMs = 15 * 60 * 1000;
  const std::atomic<bool>* cancel = nullptr;  // set by another thread: stop now
};

// What stays out of CRIU's images because the target prepared it before
// the freeze: the container's network namespace (net/netns.h), its /dev
// (dev_tree.h) and its /dev/shm (dev_shm.h).
struct KeptOut {
  uint64_t inode = 0;      // dump: the network namespace CRIU leaves out (0: CRIU saves it)
  std::string path;        // restore: opens the prepared namespace ("": CRIU rebuilds it)
  std::string hostVeth;    // restore: the prepared pair's host end
  bool devShm = false;     // dump: /dev/shm is external
  std::string devShmPath;  // restore: the prepared tmpfs, bound at /dev/shm ("": CRIU remakes it)
  bool dev = false;        // dump: /dev is external
  std::string devPath;     // restore: the prepared tree, bound at /dev ("": CRIU remakes it)
  // dump: a file of the pages the migration target holds (criu/held_pages.h),
  // left out of the images as PARENT holes by a CRIU built with lxmig's patch
  std::string heldPages;
  // restore: (CRIU's shmid, a path that opens a memfd holding that shared
  // memory object's content at the dump): CRIU makes each memfd the object
  // (criu::PageStore's mirrors; CRIU with lxmig's shmem-held patch)
  std::vector<std::pair<uint64_t, std::string>> heldShmem;
};

// A device node bound into the container, with its device cgroup rule.
struct DeviceParam {
  std::string hostPath, containerPath;
  char type = 'c';
  uint32_t major = 0, minor = 0;
};

struct ContainerParams {
  std::string name;
  std::string ip;                     // dotted quad
  std::vector<std::string> extraIps;  // more addresses of eth0 (lxmig merge)
  int prefixLen = 16;
  std::string gateway;
  std::string hwaddr;
  std::string bridge;
  std::vector<Bind> binds;
  std::vector<std::string> env;
  std::vector<DeviceParam> devices;
  // A user namespace of its own: container ids 0..idmapSize-1 are host
  // ids idmapBase... (uid and gid); 0: none.
  uint32_t idmapBase = 0, idmapSize = 0;
};

// The pid of a host process inside its PID namespace (the last NSpid of
// /proc/PID/status); 0 when it is gone.
pid_t innerPid(pid_t hostPid);
// "pid 2 'sh'": a host process as its container sees it, for messages.
std::string processLabel(pid_t hostPid);

enum class RunState { kStopped, kStarting, kRunning, kStopping, kAborting, kFreezing, kFrozen, kThawed, kUnknown };
const char* runStateName(RunState s);

// A Unix socket a merge hands over whole: the stopped original `pid` (on
// the host) holds it at `fd`; `inode` names it to CRIU (socket:[INODE]).
struct HandedUnixSocket {
  pid_t pid = 0;
  int fd = -1;
  uint64_t inode = 0;
};

class LxcHost {
 public:
  // Remembers the agent's own cgroups: liblxc 5.0 moves the process that
  // calls start() into the new container's monitor cgroup (its handler
  // takes the caller's pid as the monitor's), and the agent moves back.
  LxcHost(std::string lxcPath, std::string cgroupParent);

  const std::string& lxcPath() const { return lxcPath_; }
  std::string rootfs(const std::string& name) const { return lxcPath_ + "/" + name + "/rootfs"; }
  std::string dir(const std::string& name) const { return lxcPath_ + "/" + name; }

  // Writes config and the rootfs skeleton. AlreadyExists if defined.
  // `keepRootfs`: the rootfs was already put in place (incoming migration).
  Status define(const ContainerParams& p, bool keepRootfs = false);
  bool defined(const std::string& name) const;
  // Starts `argv` as the container's init, daemonized, all inherited fds closed.
  Status start(const std::string& name, const std::vector<std::string>& argv);
  RunState state(const std::string& name) const;
  int initPid(const std::string& name) const;
  // Its payload cgroup's memory use, and its held memory cgroup's.
  uint64_t memoryBytes(const std::string& name) const;
  // The memory cgroup a migration target charges the container's shared
  // memory to while it receives it, ahead of the container's own cgroups
  // (criu::PageStore::chargeMirrorsWith): held.NAME beside payload.NAME,
  // made if missing; an open cgroup.procs of it. Shared memory pages stay
  // charged where they were first written, so it lives as long as the
  // container here (removed with its other cgroups); memoryBytes() counts
  // it.
  Result<UniqueFd> heldMemoryCgroup(const std::string& name) const;
  // Removes it (a migration that did not restore); fine when absent.
  void removeHeldMemoryCgroup(const std::string& name) const;
  // CPU time the container's processes used since it started (its payload
  // cgroup), in nanoseconds; 0 when unknown.
  uint64_t cpuUsageNs(const std::string& name) const;

  // Cgroup freezer of the payload; waits until the kernel reports FROZEN.
  // A task caught inside vfork() (which neither the freezer nor CRIU can
  // stop) gets a moment thawed, and the freeze is tried again.
  Status freeze(const std::string& name, int timeoutMs = 5000);
  Status thaw(const std::string& name);
  bool frozen(const std::string& name) const;

  // CRIU dump of a FROZEN container into dir; the container stays frozen
  // (CRIU restores the freezer state it found), so an abort only thaws.
  // discardPages > 0: pages-1..N.img are links to /dev/null, so CRIU does
  // not write the memory of the first N processes (pre-copy reads what the
  // target lacks from the frozen processes instead).
  // CRIU is killed past `limits`; the container's tasks are not.
  // `out.inode`: the container's network namespace stays out of the
  // images (CRIU's --external net[INODE]); its restore needs out.path.
  // `out.devShm`, `out.dev`: so do /dev/shm and /dev; their restore needs
  // out.devShmPath and out.devPath.
  Status dump(const std::string& name, const std::string& dir, int discardPages = 0, const CallLimits& limits = {},
              const KeptOut& out = {});
  // CRIU restore from dir; returns with the container restored, frozen as it
  // was dumped; call thaw() to let it run. `lazy`: memory marked lazy in
  // the images is filled after the restore by a lazy-pages daemon on dir,
  // which the caller started with startLazyPages() and keeps until it exits.
  // `limits` bound it: past its deadline, or once its cancel flag is set
  // (from another thread), the restore is killed with everything in the
  // container's cgroups, and DeadlineExceeded or Cancelled is returned.
  // `out.path`: the tasks join that prepared namespace (images dumped
  // with out.inode); its host end out.hostVeth becomes the container's
  // (lxc.net.0.veth.pair, attached to the bridge by the restore).
  // `out.devShmPath`, `out.devPath`: those prepared tmpfs are bound at
  // /dev/shm and /dev (images dumped with out.devShm, out.dev).
  Status restore(const std::string& name, const std::string& dir, bool lazy = false, const CallLimits& limits = {},
                 const KeptOut& out = {});
  // Starts `criu lazy-pages` on the images in dir and waits for its socket.
  Result<Child> startLazyPages(const std::string& dir);
  // The same in two steps, so CRIU's start-up (~60 ms here) overlaps other
  // work: the daemon reads only inventory.img and pstree.img before its
  // socket is up (the pages when the restore connects), so it may start as
  // soon as those two are complete.
  Result<Child> spawnLazyPages(const std::string& dir);
  Status awaitLazyPages(const std::string& dir, Child& daemon);
  // Adoption (lxmig adopt): a container started with lxmig-init as its init
  // (installInit, then start(name, {kInitPath})) receives a process tree of
  // the host. dumpTree dumps the tree rooted at `root` with CRIU and leaves
  // its tasks stopped (SIGKILL them once the copy runs, SIGCONT them after a
  // failure); restoreInto restores such images inside the running
  // container: its namespaces and cgroups, the same pids inside it, the
  // tasks left stopped until the caller continues them (continueAll).
  static constexpr const char* kInitPath = "/.lxmig-init";
  // CRIU's key of an external network namespace (the criu wrapper's
  // --inherit-fd names the same).
  static constexpr const char* kNetnsKey = "lxmig-net";
  // Why lxmig-init could not execute the container's command ("Failed to
  // exec ..."), one line of at most 512 bytes, from kExecErrorPath in its
  // writable area; "" when it said nothing.
  static constexpr const char* kExecErrorPath = "/.lxmig-exec-error";
  std::string execError(const std::string& name) const;
  Status installInit(const std::string& name);
  // `sysv`: the tree maps System V shared memory; CRIU then dumps its IPC
  // namespace, restoreInto gives the tree that namespace, and joinTreeIpc
  // makes the container's init share it, removing the segments the tree
  // does not use (every segment of the host came along).
  Status dumpTree(pid_t root, const std::string& name, const std::string& imagesDir, bool sysv = false);
  // `handed`: Unix sockets dumpIn handed over whole (merge: a connection
  // to another container of the merge); the restore takes each from the
  // stopped original's fd (pidfd_getfd), checked to be that inode still.
  // `sysvOutside`: the images map System V memory whose objects copyIpc
  // made in the container's IPC namespace (CRIU with lxmig's merge patch).
  Status restoreInto(const std::string& name, const std::string& imagesDir,
                     const std::vector<HandedUnixSocket>& handed = {}, bool sysvOutside = false);
  Status joinTreeIpc(const std::string& name, pid_t treeRoot, const std::vector<uint64_t>& keepShmIds);
  // Merge (lxmig merge): the tree whose pid inside the container is
  // `innerRoot` dumped from inside it (CRIU shares its namespaces, so the
  // images restore into another container with restoreInto); its tasks
  // are left stopped, as dumpTree's.
  // `handed`: the sockets to hand over whole (CRIU's --external unix[INO];
  // its peer is in another network namespace: CRIU with lxmig's unix-peer
  // patch, node::criuHandsOverUnixPeers).
  // `sysvOutside`: the tree maps System V memory, carried by copyIpc
  // instead of CRIU (which dumps it only with its IPC namespace).
  Status dumpIn(const std::string& name, pid_t innerRoot, const std::string& imagesDir,
                const std::vector<HandedUnixSocket>& handed = {}, bool sysvOutside = false);
  // Merge: every System V object of `from`'s IPC namespace made again in
  // `into`'s with the same id, key, owner, mode and content (both running;
  // `from`'s processes stopped). `listPath` gets what was made, for
  // dropIpc. FailedPrecondition, nothing made, when an id or key is taken.
  Status copyIpc(const std::string& from, const std::string& into, const std::string& listPath);
  Status dropIpc(const std::string& name, const std::string& listPath);
  // The next process forked in the container's PID namespace gets last+1
  // (lxmig-init --pid-base waits for it before starting the workload).
  Status setLastPid(const std::string& name, pid_t last);
  // Merge: a bind (`file`: of a file, e.g. a device node) added to the
  // running container at its path (lxmig-lxc bind-in: made without
  // following a link; one that exists must be empty), or taken away.
  Status bindIn(const std::string& name, const Bind& b, bool file = false);
  Status unbindIn(const std::string& name, const std::string& containerPath);
  // Merge: the device cgroup rule of a device bound in live, allowed or
  // denied again (cgroup v1's devices controller: Unimplemented on a host
  // without it, whose device rules are an eBPF program liblxc loads at
  // start).
  Status allowDevice(const std::string& name, const DeviceParam& d, bool allow);
  bool canAllowDevices(const std::string& name) const;
  // SIGCONT to every process of the container but its init.
  Status continueAll(const std::string& name);
  // Host pids of the container's processes (its payload cgroup).
  Result<std::vector<pid_t>> pids(const std::string& name) const;
  // SIGKILL everything and wait until stopped. NotFound is not an error.
  Status stop(const std::string& name);
  // SIGKILL to every task of the container's payload and monitor cgroups
  // (liblxc's monitor, CRIU and what it restored so far), thawing frozen
  // ones so they die: a restore that hangs, or one a previous agent left.
  void killCgroupTasks(const std::string& name);
  // The same, and a restore of `name` a previous agent left running (the
  // helper's session: CRIU runs outside the cgroups).
  void killRestoreLeftovers(const std::string& name);
  // stop() + remove config, rootfs and cgroups. Idempotent.
  Status destroy(const std::string& name);
  std::vector<std::string> list() const;

 private:
  std::string freezerPath(const std::string& name) const;
  // lxc.net.0.veth.pair of the container's config becomes `hostVeth`
  // (replaced when there is one).
  Status setVethPair(const std::string& name, const std::string& hostVeth);
  Result<int> runHelper(const std::string& verb, const std::string& name, const std::string& imagesDir,
                        std::vector<std::string> env, const CallLimits& limits = {});
  std::string devicesCgroup(const std::string& name) const;
  bool vforkWaiting(const std::string& name) const;
  Result<int> runHelperArgs(const std::string& verb, const std::string& name, const std::vector<std::string>& args,
                            std::vector<std::string> env, const CallLimits& limits = {});
  // Runs argv (a helper call, or CRIU itself) in a session of its own,
  // stderr to the container's VERB-helper.log, killed past `limits`;
  // returns its exit code (0, or 1 when the call failed), other codes as
  // errors with the last line of its stderr.
  Result<int> runTool(const std::string& verb, const std::string& name, const std::vector<std::string>& argv,
                      std::vector<std::string> env, const CallLimits& limits = {});

  // `keepHeld`: but the held memory cgroup (a restore charges to it).
  Status removeCgroups(const std::string& name, bool keepHeld = false) const;
  // The memory hierarchy's (or cgroup2's) directory of the held cgroup.
  std::string heldMemoryDir(const std::string& name) const;
  // SIGKILL to the sessions of the processes whose command line starts
  // with helperArgv (a helper call and liblxc's forks of it).
  void killHelperSessions(const std::vector<std::string>& helperArgv);
  void returnToOwnCgroups() const;
  std::string lxcPath_;
  std::string cgroupParent_;
  std::vector<std::string> ownCgroupProcs_;  // cgroup.procs of the agent's cgroups
};

}  // namespace lxmig::container
