// What a migration needs of its own node, on either side: the node's
// containers (liblxc and CRIU underneath), their devices, the memory still
// arriving after a lazy restore, and each container's network on this node
// (address, firewall chain, conntrack entries). The migration code sees the
// node only through this interface; NodeHost (node_host.h) implements it
// over node::Node, and unit tests over a fake that keeps containers in a map.
//
// Unless a method says otherwise, a container name that the node does not
// know is NotFound, and errors name the container.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/process.h"
#include "lxmig/base/status.h"
#include "lxmig/container/dev_shm.h"
#include "lxmig/container/dev_tree.h"
#include "lxmig/container/devices.h"
#include "lxmig/container/lxc_host.h"
#include "lxmig/net/netns.h"
#include "lxmig/node/node.h"
#include "lxmig/v1/migration.pb.h"

namespace lxmig::migration {

// Network state a target imported for a container, so an abort can take
// exactly that away again.
struct ImportedNet {
  bool rules = false;     // the container's firewall chain
  std::string conntrack;  // the conntrack entries created, encoded as in v1::NetState
  uint32_t conntrackCount = 0;
};

class ContainerHost {
 public:
  virtual ~ContainerHost() = default;

  virtual const std::string& nodeName() const = 0;
  // Where CRIU images live while a migration runs (<images>/<id>), on tmpfs
  // when the node mounted one.
  virtual std::string imagesRoot() const = 0;
  // Where a target stages the images when imagesRoot cannot hold them (a
  // directory on disk, <disk>/<id>); empty: nowhere else.
  virtual std::string imagesDiskRoot() const = 0;
  // Where a migration keeps CRIU's logs after it failed (<logs>/<id>).
  virtual std::string logsRoot() const = 0;
  // Where a target stages a container's writable area while it arrives
  // (<staging>/.incoming-<id>): the same filesystem as the containers', so
  // that moving it in place is a rename.
  virtual std::string stagingRoot() const = 0;
  virtual uint64_t freeBytes(const std::string& dir) const = 0;
  virtual bool sameFilesystem(const std::string& a, const std::string& b) const = 0;

  // ---- containers ----
  virtual std::vector<std::string> containers() = 0;
  virtual bool defined(const std::string& name) = 0;
  virtual Result<node::Spec> spec(const std::string& name) = 0;
  virtual container::RunState state(const std::string& name) = 0;
  virtual uint64_t memoryBytes(const std::string& name) = 0;
  // The container's writable area (what SYNC and the final delta send).
  virtual std::string rootfs(const std::string& name) = 0;
  // Host pids of its processes.
  virtual Result<std::vector<pid_t>> pids(const std::string& name) = 0;
  // Freezes the whole container; returns once the kernel reports it frozen.
  virtual Status freeze(const std::string& name) = 0;
  virtual Status thaw(const std::string& name) = 0;
  virtual bool frozen(const std::string& name) = 0;
  // CRIU dump of a frozen container into dir; it stays frozen. With
  // discardPages > 0 CRIU does not write the memory of the first N
  // processes (pre-copy rebuilds it). CRIU is killed past limits (the
  // container's tasks are not).
  // out.inode: the container's network namespace stays out of the images
  // (the target prepared its own, netnsShape() equal); out.devShm: its
  // /dev/shm does (devShmProblem() "" while frozen, the target prepared one).
  virtual Status dump(const std::string& name, const std::string& dir, int discardPages,
                      const container::CallLimits& limits, const container::KeptOut& out) = 0;
  // What CRIU leaves out of the frozen container's processes
  // (container/criu_gaps.h), written into `dir` beside the images.
  virtual Status recordCriuGaps(const std::string& name, const std::string& dir) = 0;
  // Applied to the restored, still frozen container, from `dir` (a peer's).
  virtual Status applyCriuGaps(const std::string& name, const std::string& dir) = 0;
  // Gives the links of the restored, still frozen container's network
  // namespaces (CRIU rebuilt them) the MTUs the images had before the
  // target lowered them (net::LoweredMtu).
  virtual Status raiseMtus(const std::string& name, const std::vector<net::LoweredMtu>& links) = 0;
  // Stops and removes the container and its files. Idempotent.
  virtual Status destroy(const std::string& name) = 0;
  // Whether a bind source of a container exists on this node.
  virtual bool hostPathExists(const std::string& path) = 0;
  // FailedPrecondition when the container's processes share IPC with
  // processes outside it (grouping/): moving it alone would cut that; or
  // hold a lock on a file in a bind or a message queue
  // (container/unmovable.h), or a listener with connections waiting to be
  // accepted for more than a second. One line per reason.
  virtual Status checkMovesAlone(const std::string& name) = 0;

  // ---- receiving a container ----
  // Defines `spec` around the writable area staged at `stagedRootfs` (moved
  // in place) and records the spec.
  virtual Status installStaged(const node::Spec& spec, const std::string& stagedRootfs) = 0;
  // CRIU's lazy-pages daemon on the images in dir: spawned (its start-up
  // overlaps other work), then awaited until its socket is up.
  virtual Result<Child> spawnLazyPages(const std::string& dir) = 0;
  virtual Status awaitLazyPages(const std::string& dir, Child& daemon) = 0;
  // CRIU restore from dir; the container comes back frozen, as dumped.
  // Killed past limits.timeoutMs or once *limits.cancel is set.
  // out.path: the tasks join the namespace prepareNetns() made;
  // out.devShmPath: the tmpfs prepareDevShm() mounted is bound at /dev/shm.
  virtual Status restore(const std::string& name, const std::string& dir, bool lazy,
                         const container::CallLimits& limits, const container::KeptOut& out) = 0;
  virtual int initPid(const std::string& name) = 0;
  // The memory cgroup the container's shared memory is charged to while it
  // arrives (container::LxcHost::heldMemoryCgroup): an open cgroup.procs.
  virtual Result<UniqueFd> heldMemoryCgroup(const std::string& name) = 0;
  virtual void removeHeldMemoryCgroup(const std::string& name) = 0;
  // Kills a restore of `name` a previous agent left running (CRIU, liblxc's
  // monitor, what was restored so far); destroy() can then proceed.
  virtual void killRestore(const std::string& name) = 0;

  // ---- the network namespace kept out of CRIU's images (net/netns.h) ----
  // Of the running container `name`: its eth0 and default route (sent at
  // PREPARE), its shape (compared before the freeze), and a cheap glance
  // with the namespace's inode (taken again while frozen).
  virtual Result<net::NetnsLayout> netnsLayout(const std::string& name) = 0;
  virtual Result<std::string> netnsShape(const std::string& name) = 0;
  virtual Result<std::string> netnsGlance(const std::string& name, uint64_t* inode) = 0;
  // Target: a namespace laid out as `layout`, before the freeze.
  virtual Result<std::unique_ptr<net::PreparedNetns>> prepareNetns(const net::NetnsLayout& layout) = 0;

  // ---- /dev/shm kept out of CRIU's images (container/dev_shm.h) ----
  // Why the running container's /dev/shm is not lxmig's standard tmpfs
  // holding no more than `holds` allows ("" when it is): asked at PREPARE,
  // and again while frozen. Plain files it holds are counted in *files; the
  // source sends them (container::devShmProblem).
  virtual Result<std::string> devShmProblem(const std::string& name, container::DevShmHolds holds,
                                            container::DevShmFiles* files) = 0;
  // Source, frozen: the container's /dev/shm, opened beneath its root.
  virtual Result<UniqueFd> openDevShm(const std::string& name) = 0;
  // Target: an empty tmpfs mounted at `dir` (made here), before the freeze.
  virtual Result<std::unique_ptr<container::PreparedTmpfs>> prepareDevShm(const std::string& dir) = 0;

  // ---- /dev kept out of CRIU's images (container/dev_tree.h) ----
  // Why the running container's /dev is not liblxc's standard tree ("" when
  // it is; *bootId its boot id): asked at PREPARE, and again while frozen.
  virtual Result<std::string> devProblem(const std::string& name, std::string* bootId) = 0;
  // Target: that tree, holding `bootId`, in a tmpfs mounted at `dir`.
  virtual Result<std::unique_ptr<container::PreparedTmpfs>> prepareDev(const std::string& dir,
                                                                       const std::string& bootId) = 0;

  // ---- devices ----
  virtual Result<std::vector<container::devices::Device>> deviceNeeds(const std::string& name) = 0;
  virtual Result<std::vector<container::devices::Device>> deviceOffer() = 0;
  // The device at `path` now (a device decided at PREPARE must still be there).
  virtual Result<container::devices::Device> statDevice(const std::string& path) = 0;

  // ---- memory arriving after a lazy restore (node::Node::MemoryFill) ----
  virtual std::optional<node::Node::MemoryFill> memoryFill(const std::string& name) = 0;
  virtual Status beginMemoryFill(const std::string& name, const std::string& migrationId, pid_t daemon,
                                 const std::string& imagesDir) = 0;
  virtual void endMemoryFill(const std::string& name) = 0;

  // ---- the container's network on this node ----
  // Just before the freeze: nothing new reaches the container (packets for
  // its address wait), so that no handshake starts with a copy that is
  // about to freeze (CRIU does not carry a half-done one). Undone by
  // reconnect().
  virtual Status holdIncoming(const node::Spec& spec) = 0;
  // Once it is frozen (after holdIncoming): nothing of the frozen copy
  // leaves the node either, and its route goes.
  virtual Status isolate(const node::Spec& spec) = 0;
  // While an isolated copy is thawed for a moment (to accept connections
  // that waited): what it sends leaves (speak), then no more (silence);
  // packets for it stay held throughout.
  virtual Status speak(const node::Spec& spec) = 0;
  virtual Status silence(const node::Spec& spec) = 0;
  // The container runs on `toNode` now: its address is routed there for a
  // while, and the packets that waited since the freeze follow it. Returns
  // how many waited.
  virtual Result<size_t> forward(const node::Spec& spec, const std::string& toNode) = 0;
  // Connections waiting in the accept queues of the container's TCP and
  // Unix listeners (CRIU's dump drops or fails on them).
  virtual Result<size_t> waitingConnections(const std::string& name) = 0;
  // After an abort: route and unblock again (what waited goes to it).
  virtual Status reconnect(const node::Spec& spec) = 0;
  // Route to the container here (after a restore) / not any more.
  virtual Status claimAddress(const node::Spec& spec) = 0;
  virtual Status releaseAddress(const node::Spec& spec) = 0;
  // Its firewall chain and (when `conntrack`) the node's conntrack entries
  // of its address (`entries` says how many), taken from the frozen
  // container; reads only, so it may run while CRIU dumps it.
  // FailedPrecondition when a listener of it has connections waiting that
  // the dump left out.
  virtual Result<v1::NetState> exportNet(const node::Spec& spec, bool conntrack, size_t* entries) = 0;
  // Adds the datagrams queued in its UDP sockets to `net`. Peeking sets a
  // socket's options for a moment: never while CRIU dumps the container.
  virtual Status peekQueuedDatagrams(const node::Spec& spec, v1::NetState* net) = 0;
  // Imports what exportNet() gave on the source; `done` records what is in
  // place so far, also when it fails halfway.
  virtual Status importNet(const node::Spec& spec, const v1::NetState& net, ImportedNet* done) = 0;
  // The datagrams of `net` back in the UDP sockets of the restored,
  // still frozen container (CRIU restores the sockets without them).
  virtual Status requeueDatagrams(const std::string& name, const v1::NetState& net) = 0;
  // Takes away what importNet() put in place. Errors are logged.
  virtual void dropImportedNet(const node::Spec& spec, ImportedNet* done) = 0;
  // After a commit on the source: its chain and entries live on the target
  // now; the address is unblocked, and recorded as gone elsewhere (never
  // handed out again while a peer that may hold it is unreachable). Errors
  // are logged.
  virtual void forgetNet(const node::Spec& spec) = 0;
};

}  // namespace lxmig::migration
