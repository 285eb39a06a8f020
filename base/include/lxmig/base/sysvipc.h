// The System V IPC tables of /proc/sysvipc (shm, sem, msg), which show the
// IPC namespace of the reading thread. Each starts with a header naming its
// columns ("key shmid perms size cpid lpid nattch uid gid ..."), so a row
// is read by those names and one parser serves the three tables.
//
//   LXMIG_ASSIGN_OR_RETURN(auto rows, readSysvTable("shm"));
//   for (const SysvRow& r : rows) total += r.get("size");
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/status.h"

namespace lxmig {

struct SysvRow {
  int64_t key = 0;     // as the kernel prints it: signed decimal
  int32_t id = 0;      // shmid, semid or msqid
  uint32_t perms = 0;  // octal in the table: mode bits, SHM_DEST, SHM_LOCKED
  // Every other column by its header name (size, nattch, cpid, uid ...).
  std::map<std::string, int64_t, std::less<>> columns;
  // The column `name`, or `otherwise` when the table has none.
  int64_t get(std::string_view name, int64_t otherwise = -1) const;
};

// The rows of one table's text. A header without key, id and perms, a row
// whose columns do not match the header, or a value that is no number in
// range is an error naming the line: the kernel writes these tables, so
// anything else means they are not what this code knows.
Result<std::vector<SysvRow>> parseSysvTable(std::string_view text);
// /proc/sysvipc/TABLE ("shm", "sem" or "msg") of the calling thread's IPC
// namespace.
Result<std::vector<SysvRow>> readSysvTable(std::string_view table);

}  // namespace lxmig
