#include "lxmig/node/criu_cache.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/base/process.h"
#include "lxmig/criu/held_pages.h"

namespace lxmig::node {
namespace {

constexpr const char* kCriuCache = "/run/criu.kdat";
constexpr const char* kKeptDir = "/dev/shm/lxmig";
constexpr const char* kKept = "/dev/shm/lxmig/criu.kdat";
// CRIU's struct kerndat_s is about 1 KiB; anything far off is not one.
constexpr off_t kMaxCacheBytes = 64 << 10;
// TMPFS_MAGIC (linux/magic.h).
constexpr long kTmpfsMagic = 0x01021994;

bool onTmpfs(const char* path) {
  struct statfs s {};
  return ::statfs(path, &s) == 0 && s.f_type == kTmpfsMagic;
}

bool plausibleCache(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= kMaxCacheBytes;
}

// The kept file's directory: a real directory (not a link), root's, that
// nobody else may write.
bool ownDir() {
  struct stat st {};
  return ::lstat(kKeptDir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 022) == 0;
}

// Our link, whether its file exists or not (a reboot empties /dev/shm).
bool isOurLink() {
  auto to = readLink(kCriuCache);
  return to.ok() && *to == kKept;
}

}  // namespace

std::string keepCriuKerndat() {
  if (onTmpfs("/run")) return "CRIU keeps its kerndat cache itself (/run is a tmpfs)";
  struct stat st {};
  if (::lstat(kCriuCache, &st) == 0 && !isOurLink())
    return std::string(kCriuCache) + " exists and is not lxmig's: left as it is";
  if (!onTmpfs("/dev/shm")) return "no kerndat cache for CRIU: neither /run nor /dev/shm is a tmpfs";
  if (::mkdir(kKeptDir, 0700) != 0 && errno != EEXIST)
    return std::string("no kerndat cache for CRIU: mkdir ") + kKeptDir + ": " + std::strerror(errno);
  // /dev/shm is everyone's: the directory must be root's own, or another
  // user could hand CRIU a cache of its making.
  if (!ownDir()) return std::string("no kerndat cache for CRIU: ") + kKeptDir + " is not a directory of root's alone";
  // CRIU writes the cache into a /run that is a tmpfs of its own, in a
  // mount namespace of its own; the file is copied out before that ends.
  // Names of this process's own: the agents of a test bed start together.
  const std::string mine = "." + std::to_string(::getpid());
  const std::string tmp = std::string(kKept) + ".new" + mine;
  (void)::unlink(tmp.c_str());
  auto r = runCommand({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                       "mount -t tmpfs -o size=1m,mode=0755 lxmig-kerndat /run && criu check >/dev/null 2>&1; "
                       "cp /run/criu.kdat \"$1\"",
                       "sh", tmp},
                      {.timeoutMs = 60000, .maxOutputBytes = 4096});
  if (!r.ok() || r->exitCode != 0 || !plausibleCache(tmp.c_str())) {
    (void)::unlink(tmp.c_str());
    return "no kerndat cache for CRIU: generating it failed" +
           (r.ok() ? ": " + std::string(trim(r->err)).substr(0, 200) : ": " + r.status().message());
  }
  if (::rename(tmp.c_str(), kKept) != 0)
    return std::string("no kerndat cache for CRIU: rename to ") + kKept + ": " + std::strerror(errno);
  const std::string link = std::string(kCriuCache) + ".lxmig" + mine;
  (void)::unlink(link.c_str());
  if (::symlink(kKept, link.c_str()) != 0 || ::rename(link.c_str(), kCriuCache) != 0) {
    const std::string why = std::strerror(errno);
    (void)::unlink(link.c_str());
    return std::string("no kerndat cache for CRIU: link ") + kCriuCache + ": " + why;
  }
  return std::string("CRIU's kerndat cache kept in ") + kKept + ", linked from " + kCriuCache +
         " (/run is not a tmpfs)";
}

std::string criuKerndatState(bool* ok) {
  *ok = true;
  if (onTmpfs("/run")) return "/run is a tmpfs: CRIU keeps its kerndat cache there";
  if (isOurLink() && ownDir() && plausibleCache(kKept))
    return std::string(kCriuCache) + " -> " + kKept + " (kept by lxmigd)";
  if (!isOurLink() && plausibleCache(kCriuCache)) return std::string(kCriuCache) + " present";
  *ok = false;
  return "/run is not a tmpfs and CRIU has no kerndat cache: every dump, restore and lazy-pages start probes the "
         "kernel again (~45 ms each, in the frozen window)";
}

// The lines of `criu --version`, read once per process (none when it fails).
static const std::vector<std::string>& criuVersionLines() {
  static const std::vector<std::string> lines = [] {
    auto v = runCommand({"criu", "--version"}, {.timeoutMs = 10000});
    if (!v.ok() || v->exitCode != 0) return std::vector<std::string>{};
    return split(v->out, '\n');
  }();
  return lines;
}

static bool criuSays(const std::string& line) {
  const auto& lines = criuVersionLines();
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

bool criuLeavesOutHeldPages() { return criuSays(criu::kHeldPagesVersionLine); }

bool criuHandsOverUnixPeers() { return criuSays(kUnixPeerVersionLine); }

bool criuDumpsSysvOutside() { return criuSays(kSysvOutsideVersionLine); }

bool criuNamesAcceptedEnds() { return criuSays(kAcceptedNameVersionLine); }
bool criuWritesShmem() { return criuSays(kShmemWriteVersionLine); }

bool criuLazyInUserns() { return criuSays(kUsernsLazyVersionLine) && pathExists("/dev/userfaultfd"); }

bool criuListsDiscardedShmem() { return criuSays(kShmemListedVersionLine); }

bool criuTakesHeldShmem() { return criuSays(kShmemHeldVersionLine); }

bool criuReadsPagemapOffsets() { return criuSays(kPagemapOffsetsVersionLine); }

}  // namespace lxmig::node
