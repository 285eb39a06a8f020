// Processes of this machine, handled by host pid for lxmig adopt and lxmig
// merge: a tree stopped by CRIU's dump, continued or killed afterwards, and
// the POSIX shared memory it carries from one /dev/shm to another.
// Private to migration/.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "journal.h"
#include "lxmig/base/status.h"
#include "lxmig/container/lxc_host.h"

namespace lxmig::migration {

// At most this many processes in one adopted or merged tree (CRIU dumps
// them all with the tree stopped).
inline constexpr size_t kMaxMembers = 4096;

// A process named by pid and start time, so that a pid reused meanwhile is
// never signalled.
struct Task {
  pid_t pid = 0;
  std::string startTime;
};

// The fields of /proc/PID/stat after the command name (state first); empty
// when the process is gone.
std::vector<std::string> statFields(pid_t pid);
std::string startTimeOf(pid_t pid);
// The tree under root, from /proc/PID/task/TID/children (complete while it
// is stopped: nothing forks).
std::vector<Task> treeOf(pid_t root);
bool isZombie(pid_t pid);
// Whether any of the tasks is still alive as recorded (a zombie counts).
bool anyAlive(const std::vector<Task>& tasks);
// `sig` to each task still alive as recorded.
void signalTree(const std::vector<Task>& tree, int sig);
// Until none of the tasks is alive (a zombie counts as gone), at most
// `timeoutMs`.
void awaitGone(const std::vector<Task>& tree, int timeoutMs);
// "PID:START PID:START ..." (an audit event's words) and back; words that
// are not a task are skipped.
std::string tasksText(const std::vector<Task>& tasks);
std::vector<Task> parseTasks(std::string_view text);
// Bytes of the regular files directly in dir.
uint64_t treeBytes(const std::string& dir);

// While it lives, the bytes of the images under `dir` (its files and those
// of its subdirectories, one per tree a merge dumps) reach `progress` every
// 100 ms: the dump's progress on the operator's terminal while CRIU writes.
class ImagesWatch {
 public:
  ImagesWatch(Progressor& progress, std::string dir);
  ~ImagesWatch();
  ImagesWatch(const ImagesWatch&) = delete;
  ImagesWatch& operator=(const ImagesWatch&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};
using container::innerPid;

// POSIX shared memory: each file directly in /dev/shm named in `files`
// (e.g. "/dev/shm/q") copied into the /dev/shm of the container whose init
// is `toInit`, with its owner and mode, while its processes are stopped.
// `fromInit` 0: the files are the host's; else another container's (reached
// through its init's root). AlreadyExists when the target has one.
Status copyShmFiles(const std::vector<std::string>& files, pid_t fromInit, pid_t toInit);
// Whether that container's /dev/shm (0: the host's) has a file named as
// the last component of `file` (looked up without following a link).
bool shmFileExists(pid_t init, const std::string& file);

}  // namespace lxmig::migration
