#include "lxmig/container/criu_gaps.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/shm.h>

#include <climits>
#include <cstdlib>
#include <functional>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/process.h"
#include "lxmig/base/sysvipc.h"
#include "lxmig/container/lxc_host.h"

namespace lxmig::container {
namespace {

constexpr size_t kMaxLines = 100000;
constexpr uint64_t kMaxTid = 4194304;                   // PID_MAX_LIMIT
constexpr uint64_t kMaxSlackNs = 3600ull * 1000000000;  // an hour

// Runs fn on a thread of its own inside the IPC namespace of `pid`.
Status inIpcNamespace(pid_t pid, const std::function<Status()>& fn) {
  return inNamespace("/proc/" + std::to_string(pid) + "/ns/ipc", CLONE_NEWIPC, fn);
}

// The host tids of the tasks of `pids`.
std::vector<pid_t> tasksOf(const std::vector<pid_t>& pids) {
  std::vector<pid_t> out;
  for (pid_t p : pids)
    for (const auto& t : listDir("/proc/" + std::to_string(p) + "/task").value_or({})) {
      uint64_t tid = 0;
      if (parseUint64(t, &tid)) out.push_back(static_cast<pid_t>(tid));
    }
  return out;
}

}  // namespace

Result<CriuGaps> readCriuGaps(const std::vector<pid_t>& pids, pid_t ipcPid) {
  CriuGaps gaps;
  for (pid_t tid : tasksOf(pids)) {
    uint64_t slack = 0;
    auto text = readFile("/proc/" + std::to_string(tid) + "/timerslack_ns");
    if (!text.ok() || !parseUint64(trim(*text), &slack) || slack == 0 || slack == kDefaultTimerSlackNs) continue;
    const pid_t inner = innerPid(tid);
    if (inner > 0) gaps.timerSlackNs[static_cast<uint32_t>(inner)] = std::min(slack, kMaxSlackNs);
  }
  if (ipcPid > 0) {
    // "key shmid perms size ...": SHM_DEST is part of perms (octal).
    LXMIG_RETURN_IF_ERROR(inIpcNamespace(ipcPid, [&]() -> Status {
      LXMIG_ASSIGN_OR_RETURN(auto rows, readSysvTable("shm"));
      for (const SysvRow& r : rows)
        if (r.perms & SHM_DEST) gaps.removedShm.insert(r.id);
      return okStatus();
    }));
  }
  return gaps;
}

std::string formatCriuGaps(const CriuGaps& gaps) {
  std::string out;
  for (const auto& [tid, ns] : gaps.timerSlackNs)
    out += "timerslack " + std::to_string(tid) + " " + std::to_string(ns) + "\n";
  for (int32_t id : gaps.removedShm) out += "shm-removed " + std::to_string(id) + "\n";
  return out;
}

Result<CriuGaps> parseCriuGaps(std::string_view text) {
  CriuGaps gaps;
  size_t n = 0;
  for (const auto& line : split(text, '\n')) {
    const std::string where = "lxmig-gaps line " + std::to_string(++n);
    if (n > kMaxLines) return invalidArgument(where + ": more than " + std::to_string(kMaxLines) + " lines");
    const auto f = split(line, ' ');
    if (f.size() == 3 && f[0] == "timerslack") {
      LXMIG_ASSIGN_OR_RETURN(uint64_t tid, parseUint(f[1], where + " tid", 1, kMaxTid));
      LXMIG_ASSIGN_OR_RETURN(uint64_t ns, parseUint(f[2], where + " slack", 1, kMaxSlackNs));
      gaps.timerSlackNs[static_cast<uint32_t>(tid)] = ns;
    } else if (f.size() == 2 && f[0] == "shm-removed") {
      LXMIG_ASSIGN_OR_RETURN(uint64_t id, parseUint(f[1], where + " shmid", 0, INT32_MAX));
      gaps.removedShm.insert(static_cast<int32_t>(id));
    } else {
      return invalidArgument(where + ": not `timerslack TID NS` or `shm-removed ID`: " + quote(line));
    }
  }
  return gaps;
}

Status applyCriuGaps(const CriuGaps& gaps, const std::vector<pid_t>& pids, pid_t ipcPid) {
  if (!gaps.timerSlackNs.empty())
    for (pid_t tid : tasksOf(pids)) {
      const pid_t inner = innerPid(tid);
      auto it = gaps.timerSlackNs.find(static_cast<uint32_t>(inner));
      if (inner <= 0 || it == gaps.timerSlackNs.end()) continue;
      const std::string path = "/proc/" + std::to_string(tid) + "/timerslack_ns";
      LXMIG_RETURN_IF_ERROR(
          writeFile(path, std::to_string(it->second)).withContext("timer slack of tid " + std::to_string(inner)));
    }
  if (gaps.removedShm.empty()) return okStatus();
  if (ipcPid <= 0) return failedPrecondition("no task to reach the restored IPC namespace");
  return inIpcNamespace(ipcPid, [&]() -> Status {
    for (int32_t id : gaps.removedShm)
      if (::shmctl(id, IPC_RMID, nullptr) != 0)
        return Status::fromErrno("remove (IPC_RMID) restored segment", std::to_string(id));
    return okStatus();
  });
}

}  // namespace lxmig::container
