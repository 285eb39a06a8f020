// The IPC graph of a node: which processes share kernel objects they talk
// through, so that they must live in one container and move as one.
//
// A scan walks /proc (fds, memory maps, namespaces, cgroups) and asks the
// kernel for Unix socket peers over NETLINK_SOCK_DIAG in every network
// namespace it meets. Processes are the graph's vertices; an edge joins two
// processes that hold the same IPC object and carries the evidence (kind,
// kernel object id, path or name, and which fd or mapping of which pid).
// Connected components are groups.
//
//   auto scan = grouping::scanNode({});
//   for (const auto& g : scan.groups) std::cout << g.id << " " << g.verdict << "\n";
//
// A scan never fails because processes come and go: whatever vanished is
// left out, whatever could not be read is listed in `unreadable`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::grouping {

// Kinds of edges (Edge::kind).
inline constexpr const char* kPipe = "pipe";                      // anonymous pipe
inline constexpr const char* kFifo = "fifo";                      // named pipe
inline constexpr const char* kUnixStream = "unix-stream";         // connected stream/seqpacket peers, socketpairs
inline constexpr const char* kUnixDgram = "unix-dgram";           // datagram socket with a peer
inline constexpr const char* kUnixListener = "unix-listener";     // listener and a not yet accepted client
inline constexpr const char* kUnixShared = "unix-shared-socket";  // one socket held by several processes
inline constexpr const char* kSysvShm = "sysv-shm";
inline constexpr const char* kPosixShm = "posix-shm";  // /dev/shm object, mapped or open
inline constexpr const char* kMemfd = "memfd";
inline constexpr const char* kSharedAnon = "shared-anon";         // MAP_SHARED|MAP_ANONYMOUS inherited across fork
inline constexpr const char* kSharedFileMap = "shared-file-map";  // writable MAP_SHARED of a file
inline constexpr const char* kMqueue = "mqueue";
inline constexpr const char* kSharedFile = "shared-open-file";  // eventfd/epoll/inotify/... same open file
inline constexpr const char* kIpcNamespace = "ipc-namespace";

struct Process {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t startTime = 0;  // clock ticks after boot; (pid, startTime) names a process
  std::string comm;
  // A process in a PID namespace other than the scanner's is in a container:
  // its LXC name (from its cgroup) or "pidns:<inode>". "" on the host.
  std::string container;
  uint64_t ipcNs = 0;
  uint64_t netNs = 0;                   // read only for processes that hold sockets (0 otherwise)
  std::vector<std::string> netSockets;  // "tcp 10.0.0.1:80 LISTEN": matter for migration, do not group
};

// One end of an edge: which pid holds the object, and how.
struct Holder {
  pid_t pid = 0;
  std::string how;  // "fd 3", "map 7f12a000-7f12b000 rw-s", "ipc namespace"
};

struct Edge {
  std::string kind;
  std::string object;  // kernel object id: "pipe:[123]", "socket:[77]->socket:[78]", "dev 0:1 ino 5"
  std::string path;    // path or name where there is one ("" otherwise)
  Holder a, b;
  bool crossesContainer = false;
};

struct Group {
  std::string id;                       // stable while its oldest member lives: "g" + hex(pid, start time)
  std::string verdict;                  // single-container, spans-containers, host
  std::vector<std::string> containers;  // distinct containers of the members ("" = host)
  std::string why;                      // for spans-containers: the edges that cross
  // What makes the group movable as one: "none needed" (single-container),
  // "lxmig merge A B --name A" (spans containers), "lxmig adopt --group ID"
  // (host processes only), or both steps when host processes share IPC
  // with a container.
  std::string action;
  std::vector<pid_t> members;
  std::vector<Edge> edges;
};

struct Scan {
  std::map<pid_t, Process> processes;
  std::vector<Edge> edges;
  std::vector<Group> groups;            // components of two or more processes, by id
  std::vector<std::string> unreadable;  // "pid 42: maps: Permission denied"
  int64_t durationMs = 0;
};

struct ScanOptions {
  std::string procRoot = "/proc";
};

// Scans every process of the node.
Scan scanNode(const ScanOptions& opts);

// Pure: groups from processes and edges (connected components, verdicts,
// crossing flags). Used by scanNode and by unit tests with literal input.
std::vector<Group> buildGroups(const std::map<pid_t, Process>& processes, std::vector<Edge>& edges);

// The group holding pid. NotFound when pid does not exist; a pid that
// exists but shares nothing yields a one-member group with verdict "alone".
Result<Group> groupOf(const Scan& scan, pid_t pid);

// Groups with at least one member in the container. NotFound when no
// scanned process belongs to it.
Result<std::vector<Group>> groupsOfContainer(const Scan& scan, const std::string& container);

// Why `container` cannot move alone ("" when it can): the containers and
// host processes it shares IPC with, the edges, and the command that would
// make one container of them. One line.
std::string movesAloneProblem(const Scan& scan, const std::string& container);

}  // namespace lxmig::grouping
