// Pure parsers of /proc text, unit-tested on literal strings.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace lxmig::grouping::internal {

struct StatLine {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  unsigned flags = 0;
  uint64_t startTime = 0;
};
// /proc/PID/stat; handles comm with spaces and parentheses.
std::optional<StatLine> parseStat(std::string_view text);

struct MapsLine {
  uint64_t start = 0, end = 0;
  std::string perms;  // "rw-s"
  uint32_t devMajor = 0, devMinor = 0;
  uint64_t inode = 0;
  std::string path;  // may end in " (deleted)"
  bool shared() const { return perms.size() == 4 && perms[3] == 's'; }
  bool writable() const { return perms.size() >= 2 && perms[1] == 'w'; }
};
std::optional<MapsLine> parseMapsLine(std::string_view line);

// The LXC container of a process from /proc/PID/cgroup: a path component
// "lxc.payload.NAME" (LXC's default) or "payload.NAME" (lxmig's agents,
// under their cgroup parent). "" when none.
std::string containerFromCgroup(std::string_view cgroupText);

// "pipe:[123]" -> 123 for prefix "pipe"; nullopt otherwise.
std::optional<uint64_t> bracketInode(std::string_view link, std::string_view prefix);

// One row of /proc/net/{tcp,tcp6,udp,udp6}: inode and a readable summary
// "tcp 10.0.0.1:80 LISTEN".
struct NetRow {
  uint64_t inode = 0;
  std::string summary;
};
std::optional<NetRow> parseNetLine(std::string_view line, std::string_view proto, bool v6);

// /proc/sysvipc/shm: shmid -> "key 0x0000abcd nattch 2 cpid 42" (the
// evidence for SysV edges; a SYSV mapping's inode number is the shmid).
std::map<uint64_t, std::string> parseSysvShm(std::string_view text);

}  // namespace lxmig::grouping::internal
