// Small file and string helpers with Status errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

namespace lxmig {

Result<std::string> readFile(const std::string& path);
// Its first `max` bytes at most (a script's head, a header).
Result<std::string> readFileHead(const std::string& path, size_t max);
// The target of the symbolic link at path (readlink(2)), at most 4095 bytes.
Result<std::string> readLink(const std::string& path);
// Writes through a temporary file and rename(2), so readers never see a
// half-written file. mode applies to the new file.
Status writeFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644);
// Plain open(O_WRONLY|O_TRUNC)+write, for /proc, /sys and cgroup files.
Status writeFile(const std::string& path, std::string_view data);
// mkdir -p; existing directories are fine.
Status makeDirs(const std::string& path, unsigned mode = 0755);
// rm -rf that does not cross mount points; NotFound is not an error.
Status removeTree(const std::string& path);
// The same for the entry `name` of an open directory, never following a
// link (a link is removed, not what it points to); `shown` names it in
// errors.
Status removeTreeAt(int dirfd, const std::string& name, const std::string& shown);
// Opens the directory `rel` (a relative path, checkRelativePath; "." is
// the root itself) beneath the open directory `rootfd` without following
// any symbolic link and without leaving it: openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or O_NOFOLLOW on every
// component where openat2 is missing. A link or a non-directory on the way
// is FailedPrecondition; a missing component NotFound. With O_PATH the fd
// only anchors *at() calls.
Result<UniqueFd> openDirBeneath(int rootfd, const std::string& rel, const std::string& shown, bool pathOnly = false);
// The same beneath the root of process `pid` (e.g. a container's init):
// /proc/PID/root, a magic link, is the one thing followed. *shown gets
// "/proc/PID/root/REL", for errors.
Result<UniqueFd> openDirBeneathRootOf(int pid, const std::string& rel, std::string* shown);
bool pathExists(const std::string& path);
// The directory of this program's binary (/proc/self/exe, links resolved),
// without a trailing slash: where lxmig installs its helpers (lxmig-lxc,
// lxmig-init, the rlimits shim) next to lxmigd.
Result<std::string> programDir();
// This kernel's boot id (/proc/sys/kernel/random/boot_id); "" if unreadable.
std::string bootId();
// One entry of a directory listing; `type` is dirent's d_type (DT_DIR,
// DT_REG, DT_LNK, ...; DT_UNKNOWN where the filesystem does not say).
struct DirEntry {
  std::string name;
  unsigned char type = 0;
};
// The entries of a directory but "." and "..", in no particular order.
// NotFound when it does not exist. `listDirAt` reads an open directory fd
// (not closed; read from its start), `shown` names it in errors.
Result<std::vector<DirEntry>> listDirAt(int dirfd, const std::string& shown);
Result<std::vector<DirEntry>> listDirEntries(const std::string& path);
// Just the names.
Result<std::vector<std::string>> listDir(const std::string& path);
// Copies len bytes between open files at the given offsets (the kernel
// copies; no user-space buffer). `what` names the destination in errors.
Status copyFileRange(int in, uint64_t inOff, int out, uint64_t outOff, uint64_t len, const std::string& what);
// Writes every dirty page of the filesystem holding `dir` to disk (syncfs).
Status syncFilesystem(const std::string& dir);
// Bytes an unprivileged writer may still put on the filesystem holding `dir`.
Result<uint64_t> freeBytesIn(const std::string& dir);
// Reads exactly n bytes at `off` (an error at end of file) / writes all n
// bytes at `off`, retrying short transfers and EINTR. `path` names the file
// in errors.
Status preadAll(int fd, char* p, uint64_t n, uint64_t off, const std::string& path);
Status pwriteAll(int fd, const char* p, uint64_t n, uint64_t off, const std::string& path);

std::vector<std::string> split(std::string_view s, char sep, bool skipEmpty = true);
std::string_view trim(std::string_view s);
// The words of a line: the runs of characters between spaces and tabs
// (views into `s`).
std::vector<std::string_view> words(std::string_view s);
bool startsWith(std::string_view s, std::string_view prefix);
bool parseUint64(std::string_view s, uint64_t* out);

// Monotonic clock in nanoseconds and wall clock in milliseconds since epoch.
int64_t monotonicNs();
int64_t wallMs();
// CPU time of the calling thread in nanoseconds.
int64_t threadCpuNs();
// "1.5 MiB", "640 KiB"
std::string humanBytes(uint64_t bytes);

}  // namespace lxmig
