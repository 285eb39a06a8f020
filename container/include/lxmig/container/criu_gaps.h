// Process state CRIU 4.2.1 does not restore, carried beside its images
// (tests/conformance found each):
// - a thread's timer slack (PR_SET_TIMERSLACK): CRIU's restored tasks have
//   the default 50 µs;
// - a System V shared memory segment removed (IPC_RMID) while still
//   attached: CRIU restores it as not removed, so it would outlive its
//   last detach.
// The source records them from the frozen container into `lxmig-gaps`
// in the images directory (sent with the images); the target applies them
// to the restored container before it thaws. The file is a peer's: every
// line is checked against the grammar below and bounds.
//
//   timerslack <tid inside the container> <ns>
//   shm-removed <shmid>
//
//   LXMIG_ASSIGN_OR_RETURN(auto gaps, container::readCriuGaps(pids, pids.front()));
//   LXMIG_RETURN_IF_ERROR(writeFileAtomic(dir + "/" + container::kCriuGapsFile, container::formatCriuGaps(gaps)));
//   ... on the target, restored and frozen:
//   LXMIG_ASSIGN_OR_RETURN(auto gaps, container::parseCriuGaps(text));
//   LXMIG_RETURN_IF_ERROR(container::applyCriuGaps(gaps, pids, init));
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig::container {

inline constexpr const char* kCriuGapsFile = "lxmig-gaps";
inline constexpr uint64_t kDefaultTimerSlackNs = 50000;

struct CriuGaps {
  std::map<uint32_t, uint64_t> timerSlackNs;  // inner tid -> slack (only those not the default)
  std::set<int32_t> removedShm;               // shmids marked IPC_RMID
  bool empty() const { return timerSlackNs.empty() && removedShm.empty(); }
  bool operator==(const CriuGaps&) const = default;
};

// From the tasks of `pids` (host pids) and the IPC namespace of `ipcPid`.
Result<CriuGaps> readCriuGaps(const std::vector<pid_t>& pids, pid_t ipcPid);
std::string formatCriuGaps(const CriuGaps& gaps);
// InvalidArgument, one line naming the line, for anything off the grammar.
Result<CriuGaps> parseCriuGaps(std::string_view text);
// Sets the slack of the tasks of `pids` whose inner tid is listed, and
// removes the listed segments in the IPC namespace of `ipcPid`.
Status applyCriuGaps(const CriuGaps& gaps, const std::vector<pid_t>& pids, pid_t ipcPid);

}  // namespace lxmig::container
