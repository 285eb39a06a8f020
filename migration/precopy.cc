#include "precopy.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <optional>
#include <set>
#include <span>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/criu/image.h"
#include "lxmig/transport/data_link.h"

namespace lxmig::migration {

using tracking::DirtyTracker;
using tracking::dumpedPrivate;
using tracking::kPageSize;
using tracking::PageSet;
using tracking::parseMaps;
using tracking::Range;
using tracking::TrackerScan;
using transport::BytesCallback;
using transport::ChunkSink;
using transport::takeBuffer;
using namespace criu;  // image.h: CRIU pagemaps, read and rewritten here
namespace {

constexpr const char* kLog = "precopy";
constexpr size_t kReadBytes = 1 << 20;   // reading back the delta after the dump
constexpr size_t kChunkBytes = 1 << 20;  // one message of a round's page stream
constexpr size_t kMaxIov = 1024;         // IOV_MAX

std::string roundDir(int k) {
  char b[32];
  std::snprintf(b, sizeof b, "rounds/%04d", k);
  return b;
}

std::string procName(pid_t pid) {
  auto c = readFile("/proc/" + std::to_string(pid) + "/comm");
  return c.ok() ? std::string(trim(*c)) : "?";
}

// Builds the chunks of files written on the target under the images area.
class Emitter {
 public:
  Emitter(const std::string& id, const ChunkSink& sink, const BytesCallback& onBytes)
      : id_(id), sink_(sink), onBytes_(onBytes) {}
  Status dir(const std::string& rel) { return meta(rel, v1::FileMeta::DIRECTORY, 0700, ""); }
  // The receiver truncates a file to the size its header announced when the
  // next header arrives; a header sent again for the same file fixes it.
  Status file(const std::string& rel, uint64_t size) { return meta(rel, v1::FileMeta::REGULAR, 0600, "", size); }
  Status data(const std::string& rel, uint64_t off, std::string bytes) {
    v1::TransferChunk c = base(rel);
    c.set_offset(off);
    uint64_t n = bytes.size();
    c.set_data(std::move(bytes));
    if (!sink_(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
    sent_ += n;
    if (onBytes_) onBytes_(n);
    return okStatus();
  }
  // A whole file in chunks of at most kChunkBytes, like the pages (the
  // pagemap of a large, scattered dirty set is megabytes).
  Status whole(const std::string& rel, const std::string& bytes) {
    LXMIG_RETURN_IF_ERROR(file(rel, bytes.size()));
    for (size_t off = 0; off < bytes.size(); off += kChunkBytes)
      LXMIG_RETURN_IF_ERROR(data(rel, off, bytes.substr(off, kChunkBytes)));
    return okStatus();
  }
  uint64_t sent() const { return sent_; }

 private:
  v1::TransferChunk base(const std::string& rel) {
    v1::TransferChunk c;
    c.set_migration_id(id_);
    c.set_area(v1::TransferChunk::IMAGES);
    c.set_path(rel);
    return c;
  }
  Status meta(const std::string& rel, v1::FileMeta::Type type, uint32_t mode, const std::string& link,
              uint64_t size = 0) {
    v1::TransferChunk c = base(rel);
    auto* m = c.mutable_meta();
    m->set_type(type);
    m->set_mode(mode);
    m->set_size(size);
    m->set_mtime_ns(wallMs() * 1000000);
    m->set_link_target(link);
    if (!sink_(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
    return okStatus();
  }
  const std::string& id_;
  const ChunkSink& sink_;
  const BytesCallback& onBytes_;
  uint64_t sent_ = 0;
};

// Page files of shared memory in a round directory are numbered from here
// (a process's are its pid, always below).
constexpr uint32_t kSharedPagesId = 0x80000000u;

// Calls extent(first, end) for each stretch of whole pages of `fd` (a
// shared memory object) below `size` that holds data (SEEK_DATA and
// SEEK_HOLE: the pages CRIU dumps).
template <typename ExtentFn>
Status forEachExtent(int fd, const std::string& name, uint64_t size, ExtentFn extent) {
  const uint64_t last = (size + kPageSize - 1) / kPageSize * kPageSize;
  for (uint64_t off = 0; off < size;) {
    off_t data = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data beyond
      return Status::fromErrno("seek data in", name);
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::fromErrno("seek hole in", name);
    const uint64_t first = static_cast<uint64_t>(data) / kPageSize * kPageSize;
    const uint64_t end =
        std::min<uint64_t>((static_cast<uint64_t>(hole) + kPageSize - 1) / kPageSize * kPageSize, last);
    if (end > first) LXMIG_RETURN_IF_ERROR(extent(first, end));
    off = std::max(end, first + kPageSize);
  }
  return okStatus();
}

// Bytes of the object's data extents below `size`.
Result<uint64_t> dataBytes(int fd, const std::string& name, uint64_t size) {
  uint64_t total = 0;
  LXMIG_RETURN_IF_ERROR(forEachExtent(fd, name, size, [&](uint64_t first, uint64_t end) {
    total += end - first;
    return okStatus();
  }));
  return total;
}

// Reads the object's data pages below `size` 1 MiB at a time and calls
// page(offset, bytes of one page) for each.
template <typename PageFn>
Status forEachDataPage(int fd, const std::string& name, uint64_t size, std::vector<char>& buf, PageFn page) {
  if (buf.size() < kReadBytes) buf.resize(kReadBytes);
  return forEachExtent(fd, name, size, [&](uint64_t first, uint64_t end) -> Status {
    for (uint64_t a = first; a < end;) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(kReadBytes, end - a));
      ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(a));
      if (n < 0) return Status::fromErrno("read", name);
      std::fill(buf.begin() + n, buf.begin() + static_cast<ssize_t>(len), 0);  // a last partial page
      for (size_t p = 0; p < len; p += kPageSize) LXMIG_RETURN_IF_ERROR(page(a + p, buf.data() + p));
      a += len;
    }
    return okStatus();
  });
}

}  // namespace

Result<PageSet> dumpedPages(pid_t pid) {
  LXMIG_ASSIGN_OR_RETURN(std::string maps, readFile("/proc/" + std::to_string(pid) + "/maps"));
  std::vector<Range> fileBacked, special;
  // CRIU's parasite injection writes into the first page of the first
  // executable mapping (compel's syscall address), making it a page the
  // dump includes.
  std::optional<uint64_t> compelPage;
  for (const auto& e : parseMaps(maps)) {
    if (dumpedPrivate(e)) (e.inode ? fileBacked : special).push_back(e.range);
    bool exec = e.perms.size() >= 4 && e.perms[2] == 'x';
    if (exec && !compelPage) compelPage = e.perms[3] == 'p' ? e.range.start : 0;
  }
  LXMIG_ASSIGN_OR_RETURN(PageSet out, presentPages(pid, fileBacked, true));
  LXMIG_ASSIGN_OR_RETURN(PageSet anon, presentPages(pid, special));
  for (const auto& r : anon.ranges()) out.add(r);
  if (compelPage && *compelPage) out.add(*compelPage, *compelPage + kPageSize);
  return out;
}

namespace {

// The device of the kernel's internal shmem mount, which holds memfd files,
// shared anonymous mappings and SysV segments (not /dev/shm: a tmpfs of its
// own). 0 when it cannot be found.
dev_t shmemDevice() {
  static const dev_t dev = [] {
    UniqueFd fd(::memfd_create("lxmig-shmem-dev", MFD_CLOEXEC));
    struct stat st {};
    return fd && ::fstat(fd.get(), &st) == 0 ? st.st_dev : dev_t{0};
  }();
  return dev;
}

// The object behind `path` (a /proc magic link) when it lives on the shmem
// device: its inode, CRIU's shmid.
// Nothing else is opened: a name is the container's choice, and opening a
// device or a FIFO it maps or holds could do something.
std::optional<uint64_t> shmemInode(const std::string& path) {
  struct stat before {};
  if (::stat(path.c_str(), &before) != 0 || !S_ISREG(before.st_mode) || before.st_dev != shmemDevice())
    return std::nullopt;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != shmemDevice() ||
      st.st_ino != before.st_ino)
    return std::nullopt;
  return static_cast<uint64_t>(st.st_ino);
}

// The name CRIU 4.2.1 gives the memfd it restores a shared memory object
// as (criu/memfd.c, dump_one_memfd): the object's link without its
// " (deleted)", and without "/memfd:" for a memfd ("/dev/zero" for a
// shared anonymous mapping). Nothing for a link of another form, or one
// longer than a memfd's name may be.
std::optional<std::string> criuMemfdName(const std::string& opener) {
  char link[PATH_MAX];
  const ssize_t n = ::readlink(opener.c_str(), link, sizeof link);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof link) return std::nullopt;
  std::string_view v(link, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)", kMemfd = "/memfd:";
  if (!v.ends_with(kDeleted)) return std::nullopt;
  v.remove_suffix(kDeleted.size());
  if (v.starts_with(kMemfd)) v.remove_prefix(kMemfd.size());
  if (v.size() > criu::kMaxMemfdName) return std::nullopt;
  return std::string(v);
}

}  // namespace

Result<std::map<uint64_t, std::string>> shmemObjects(const std::vector<pid_t>& pids) {
  std::map<uint64_t, std::string> out;
  if (shmemDevice() == 0) return internalError("cannot find the kernel's shmem device (memfd_create failed)");
  for (pid_t pid : pids) {
    const std::string proc = "/proc/" + std::to_string(pid);
    auto maps = readFile(proc + "/maps");
    if (!maps.ok()) continue;  // exited: the dump will say
    for (const auto& e : parseMaps(*maps)) {
      // SysV segments are on the same device; CRIU dumps them last.
      if (e.inode == 0 || startsWith(e.path, "/SYSV")) continue;
      const bool shared = e.perms.size() >= 4 && e.perms[3] == 's';
      if (!shared && e.path.find("memfd:") == std::string::npos) continue;
      char name[64];
      std::snprintf(name, sizeof name, "/map_files/%llx-%llx", static_cast<unsigned long long>(e.range.start),
                    static_cast<unsigned long long>(e.range.end));
      if (out.count(e.inode)) continue;
      if (auto ino = shmemInode(proc + name); ino && *ino == e.inode) out[*ino] = proc + name;
    }
    // A memfd held only as an fd. Its link names it; nothing else is opened.
    for (const auto& fdName : listDir(proc + "/fd").value_or({})) {
      const std::string link = proc + "/fd/" + fdName;
      char target[64] = {0};
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0 || std::string_view(target, static_cast<size_t>(n)).substr(0, 7) != "/memfd:") continue;
      if (auto ino = shmemInode(link); ino && !out.count(*ino)) out[*ino] = link;
    }
  }
  return out;
}

Result<PidIdentity> pidIdentity(pid_t pid) {
  const std::string p = "/proc/" + std::to_string(pid);
  auto status = readFile(p + "/status");
  auto stat = readFile(p + "/stat");
  if (!status.ok() || !stat.ok()) return notFound("pid " + std::to_string(pid) + " exited");
  PidIdentity id;
  for (const auto& line : split(*status, '\n')) {
    if (!startsWith(line, "NSpid:")) continue;
    auto f = split(line.substr(6), '\t');
    if (f.empty()) f = split(line.substr(6), ' ');
    if (!f.empty()) id.vpid = static_cast<pid_t>(std::stol(std::string(trim(f.back()))));
  }
  size_t rp = stat->rfind(')');
  if (rp != std::string::npos) {
    auto f = split(stat->substr(rp + 2), ' ');
    if (f.size() > 19) id.startTime = std::stoull(f[19]);
  }
  if (id.vpid == 0) return notFound("pid " + std::to_string(pid) + " has no NSpid");
  return id;
}

PreCopy::PreCopy(PreCopyOptions opts, PidLister pids)
    : opts_(std::move(opts)),
      pids_(std::move(pids)),
      stopRule_({opts_.maxDowntimeMs, opts_.maxRounds, opts_.memoryBytes}) {}

PreCopy::~PreCopy() { disarm(); }

Result<std::unique_ptr<PreCopy::Proc>> PreCopy::attach(pid_t pid) {
  LXMIG_ASSIGN_OR_RETURN(PidIdentity id, pidIdentity(pid));
  auto p = std::make_unique<Proc>();
  p->pid = pid;
  p->vpid = id.vpid;
  p->startTime = id.startTime;
  auto t = opts_.backend->create(pid);
  if (!t.ok()) return t.status();
  p->tracker = std::move(*t);
  return p;
}

Status PreCopy::refreshProcesses(bool attachNew) {
  LXMIG_ASSIGN_OR_RETURN(auto pids, pids_());
  std::map<pid_t, bool> now;
  for (pid_t p : pids) now[p] = true;
  for (auto it = procs_.begin(); it != procs_.end();) {
    auto id = pidIdentity(it->first);
    bool same = now.count(it->first) && id.ok() && id->startTime == it->second->startTime;
    if (!same) it = procs_.erase(it);  // exited (its pages go with it)
    else ++it;
  }
  if (!attachNew) return okStatus();
  for (pid_t p : pids) {
    if (procs_.count(p)) continue;
    auto pr = attach(p);
    if (pr.ok()) {
      procs_[p] = std::move(*pr);
    } else if (pr.status().code() != Code::kNotFound) {
      // Started after the first round and cannot be watched: its memory
      // stays dirty (sent after the freeze).
      std::string w = "pid " + std::to_string(p) + " (" + procName(p) + ") not tracked: " + pr.status().message();
      LXMIG_LOG(kWarn, kLog) << w;
      warnings_.push_back(w);
    }
  }
  return okStatus();
}

Status PreCopy::start() {
  LXMIG_ASSIGN_OR_RETURN(auto pids, pids_());
  for (pid_t p : pids) {
    auto pr = attach(p);
    if (pr.ok()) {
      procs_[p] = std::move(*pr);
      continue;
    }
    if (pr.status().code() == Code::kNotFound) continue;
    Status why = failedPrecondition("pid " + std::to_string(p) + " (" + procName(p) + "): " + pr.status().message());
    disarm();
    return why;
  }
  if (procs_.empty()) return failedPrecondition("no process to track");
  return okStatus();
}

// Scans every process: fills `toSend` with what the target lacks and
// drops from each `valid` what changed. Returns the dirty page count.
Result<uint64_t> PreCopy::scan(std::map<pid_t, PageSet>& toSend, bool armNew, std::map<pid_t, PageSet>* once) {
  uint64_t dirty = 0;
  std::vector<pid_t> gone;
  for (auto& [pid, p] : procs_) {
    PageSet& out = toSend[pid];
    if (!p->tracker) continue;
    if (!p->armed) {
      if (!armNew) continue;
      // Protection follows the reads (round 0 reads every page): a write
      // to a page not read yet costs no fault and no second send.
      auto armed = p->tracker->armDeferred();
      if (!armed.ok()) {
        if (armed.status().code() == Code::kNotFound) gone.push_back(pid);
        else return armed.status().withContext("pid " + std::to_string(pid));
        continue;
      }
      p->armed = true;
      p->protectAsRead = true;
      p->protectedTo = 0;
      auto present = presentPages(pid, armed->ranges());
      if (!present.ok()) {
        gone.push_back(pid);
        continue;
      }
      out = std::move(*present);
      // Private memory the tracker does not watch (written pages of file
      // mappings, ...) is sent once too: it is dirty until the freeze, but
      // its place in the target's page store is then already reserved.
      if (once) {
        PageSet rest;
        if (auto d = dumpedPages(pid); d.ok()) rest = std::move(*d);
        for (const auto& r : armed->ranges()) rest.remove(r);
        for (const auto& r : rest.ranges()) out.add(r);
        (*once)[pid] = std::move(rest);
      }
    } else {
      auto s = p->tracker->collect(armNew);
      if (!s.ok()) {
        if (s.status().code() == Code::kNotFound) gone.push_back(pid);
        else return s.status().withContext("pid " + std::to_string(pid));
        continue;
      }
      p->valid.intersect(s->watched);
      for (const auto& r : s->written.ranges()) p->valid.remove(r);
      out = std::move(s->written);
      if (!s->armed.empty()) {
        auto present = presentPages(pid, s->armed.ranges());
        if (present.ok())
          for (const auto& r : present->ranges()) out.add(r);
      }
    }
    // Only what the target lacks travels (a page written back to a state
    // the target holds is still resent: content is not compared).
    dirty += out.bytes() / kPageSize;
  }
  for (pid_t g : gone) {
    procs_.erase(g);
    toSend.erase(g);
  }
  return dirty;
}

// Protects the pages a read is about to take, in one call over their span
// unless the span is mostly other memory. Ranges are widened to whole 2 MiB
// blocks (protecting part of a transparent huge page would split it, and
// the workload would keep the small pages), but never below what this
// round already protected: protecting a page again after its read would
// forget a write made since (and the target would keep the old content).
// Pieces come in address order, so `protectedTo` only grows.
Status PreCopy::protectPieces(Proc& p, const std::vector<Range>& pieces, uint64_t total) {
  if (pieces.empty()) return okStatus();
  constexpr uint64_t kBlock = 2 << 20;
  auto protect = [&](const Range& r) -> Status {
    const uint64_t start = std::max(r.start / kBlock * kBlock, p.protectedTo);
    const uint64_t end = (r.end + kBlock - 1) / kBlock * kBlock;
    if (start >= end) return okStatus();
    p.protectedTo = end;
    return p.tracker->protect({start, end});
  };
  Status st;
  if (pieces.back().end - pieces.front().start <= 4 * total) {
    st = protect({pieces.front().start, pieces.back().end});
  } else {
    for (const auto& pc : pieces)
      if (st = protect(pc); !st.ok()) break;
  }
  // A process that exited is noticed by the read; its pages go with it.
  return st.code() == Code::kNotFound ? okStatus() : st;
}

Result<v1::RoundReport> PreCopy::round(const ChunkSink& sink, const BytesCallback& onBytes, bool mayStop) {
  v1::RoundReport rs;
  rs.set_round(roundsDone_);
  rs.set_started_ms(wallMs());
  const int64_t t0 = monotonicNs();
  const bool first = roundsDone_ == 0;
  if (!first) LXMIG_RETURN_IF_ERROR(refreshProcesses(true));

  // ---- scan ----
  bool needFreeze = false;
  for (const auto& [pid, p] : procs_)
    if (p->tracker && p->armed && p->tracker->collectNeedsFreeze()) needFreeze = true;
  if (needFreeze && opts_.freeze) LXMIG_RETURN_IF_ERROR(opts_.freeze());
  std::map<pid_t, PageSet> toSend, once;
  auto dirty = scan(toSend, true, &once);
  if (needFreeze && opts_.thaw) LXMIG_RETURN_IF_ERROR(opts_.thaw());
  if (!dirty.ok()) return dirty.status();
  const int64_t tScan = monotonicNs();
  rs.set_scan_us((tScan - t0) / 1000);
  rs.set_dirty_pages(*dirty);
  rs.set_processes(static_cast<uint32_t>(procs_.size()));
  const double dirtyBytes = static_cast<double>(rs.dirty_pages() * kPageSize);
  if (lastScanNs_ > 0 && tScan > lastScanNs_)
    rs.set_dirty_rate_bps(dirtyBytes * 1e9 / static_cast<double>(tScan - lastScanNs_));
  lastScanNs_ = tScan;

  // What the processes hold worth sending: what the target holds plus what
  // it lacks (for the 3x rule, which must follow a growing workload).
  uint64_t footprint = 0;
  for (const auto& [pid, p] : procs_) footprint += p->valid.bytes() + toSend[pid].bytes();

  // ---- stop rule (DESIGN.md step 3), decided on the fresh dirty set ----
  if (!first) {
    auto d = stopRule_.decide(rs.dirty_pages() * kPageSize, footprint, rs.dirty_rate_bps(), sendRate_, roundsDone_);
    rs.set_predicted_downtime_ms(d.predictedDowntimeMs);
    if (mayStop) rs.set_stop(std::move(d.stop));
    if (!rs.stop().empty()) {
      rs.set_send_rate_bps(sendRate_);
      rs.set_duration_ms((monotonicNs() - t0) / 1000000);
      return rs;
    }
  }
  if (opts_.onScan) opts_.onScan(rs);
  if (opts_.beforeSend) LXMIG_RETURN_IF_ERROR(opts_.beforeSend(footprint));

  // ---- send: one round directory on the target ----
  Emitter em(opts_.migrationId, sink, onBytes);
  const std::string dir = roundDir(roundsDone_);
  if (first) LXMIG_RETURN_IF_ERROR(em.dir("rounds"));
  LXMIG_RETURN_IF_ERROR(em.dir(dir));
  const int64_t tSend = monotonicNs();
  int64_t readNs = 0, sendNs = 0;  // where a round's time goes (debug log)
  for (auto& [pid, p] : procs_) {
    const std::string pages = dir + "/pages-" + std::to_string(p->vpid) + ".img";
    const uint64_t planned = toSend[pid].bytes();
    LXMIG_RETURN_IF_ERROR(em.file(pages, planned));
    PageSet sentNow;
    uint64_t off = 0;
    // Scattered dirty pages are gathered: one process_vm_readv reads up to
    // kChunkBytes from up to kMaxIov places straight into the chunk that
    // travels (no copy), and the pages file grows in address order.
    const std::vector<Range> todo = toSend[pid].ranges();
    size_t ri = 0;
    uint64_t a = todo.empty() ? 0 : todo[0].start;
    std::vector<iovec> remote;
    std::vector<Range> pieces;
    while (ri < todo.size()) {
      remote.clear();
      pieces.clear();
      size_t total = 0, rj = ri;
      uint64_t b = a;
      while (rj < todo.size() && remote.size() < kMaxIov && total < kChunkBytes) {
        uint64_t end = std::min<uint64_t>(todo[rj].end, b + (kChunkBytes - total));
        remote.push_back({reinterpret_cast<void*>(b), end - b});
        pieces.push_back({b, end});
        total += end - b;
        if (end == todo[rj].end) {
          if (++rj < todo.size()) b = todo[rj].start;
        } else {
          b = end;
        }
      }
      if (p->protectAsRead) LXMIG_RETURN_IF_ERROR(protectPieces(*p, pieces, total));
      std::string chunk = takeBuffer(total);
      iovec local{chunk.data(), total};
      const int64_t tr0 = monotonicNs();
      ssize_t n = ::process_vm_readv(pid, &local, 1, remote.data(), remote.size(), 0);
      readNs += monotonicNs() - tr0;
      if (n < 0 && errno == ESRCH) break;  // exited: its pages go with it
      const size_t good = n > 0 ? static_cast<size_t>(n) / kPageSize * kPageSize : 0;
      uint64_t failedAt = 0;  // address of the first page not read
      size_t acc = 0;
      for (const auto& pc : pieces) {
        if (acc >= good) {
          if (!failedAt) failedAt = pc.start;
          break;
        }
        uint64_t len = std::min<uint64_t>(pc.end - pc.start, good - acc);
        sentNow.add(pc.start, pc.start + len);
        if (len < pc.end - pc.start) failedAt = pc.start + len;
        acc += len;
      }
      if (good > 0) {
        chunk.resize(good);
        const int64_t tw0 = monotonicNs();
        LXMIG_RETURN_IF_ERROR(em.data(pages, off, std::move(chunk)));
        sendNs += monotonicNs() - tw0;
        off += good;
        rs.set_pages_sent(rs.pages_sent() + good / kPageSize);
      }
      if (good == total) {
        ri = rj;
        a = b;
        continue;
      }
      // A page that vanished meanwhile is skipped: the next scan sees its
      // mapping gone or changed.
      const uint64_t next = failedAt + kPageSize;
      while (ri < todo.size() && todo[ri].end <= next) ++ri;
      if (ri < todo.size()) a = std::max(todo[ri].start, next);
    }
    p->protectAsRead = false;  // what was not read stays unprotected: written, sent next round
    if (off != planned) LXMIG_RETURN_IF_ERROR(em.file(pages, off));  // pages vanished: the file is shorter
    for (const auto& r : sentNow.ranges()) p->valid.add(r);
    for (const auto& r : once[pid].ranges()) p->valid.remove(r);  // unwatched: never valid
    PageSet described = p->valid;                                 // every page of the pages file must be described
    for (const auto& r : sentNow.ranges()) described.add(r);
    LXMIG_RETURN_IF_ERROR(em.whole(dir + "/pagemap-" + std::to_string(p->vpid) + ".img",
                                   serializePagemap(roundPagemap(static_cast<uint32_t>(p->vpid), described, sentNow))));
  }
  // Shared memory: the pages whose content changed since they were sent,
  // once per object, whichever processes map it.
  auto pids = pids_();
  auto objects = pids.ok() ? shmemObjects(*pids) : Result<std::map<uint64_t, std::string>>(pids.status());
  if (!objects.ok()) return objects.status().withContext("shared memory of the container");
  uint32_t pagesId = kSharedPagesId;
  for (const auto& [shmid, opener] : *objects) {
    UniqueFd fd(::open(opener.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;  // its last user exited: the dump will not have it either
    SharedObject& obj = shared_[shmid];
    const std::string pages = dir + "/pages-" + std::to_string(pagesId) + ".img";
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Status::fromErrno("stat", opener);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    // The header announces at most the object's data (its extents now);
    // the one after the data says how much it was. The receiver cuts a
    // file to its header's size when the next header comes, so the data
    // sent stays within the first announcement.
    LXMIG_ASSIGN_OR_RETURN(const uint64_t bound, dataBytes(fd.get(), opener, size));
    LXMIG_RETURN_IF_ERROR(em.file(pages, bound));
    std::vector<std::pair<uint64_t, uint64_t>> now;  // the new obj.pages
    size_t j = 0;                                    // cursor in obj.pages
    PageSet changed;
    std::string chunk;
    uint64_t off = 0;
    Status sent = forEachDataPage(fd.get(), opener, size, buf_, [&](uint64_t a, const char* page) -> Status {
      const uint64_t h = XXH3_64bits(page, kPageSize);
      while (j < obj.pages.size() && obj.pages[j].first < a) ++j;
      if (j < obj.pages.size() && obj.pages[j] == std::make_pair(a, h)) {
        now.emplace_back(a, h);  // the target holds it as it is
        return okStatus();
      }
      if (off + chunk.size() + kPageSize > bound) return okStatus();  // appeared since: next round
      now.emplace_back(a, h);
      changed.add(a, a + kPageSize);
      chunk.append(page, kPageSize);
      if (chunk.size() < kChunkBytes) return okStatus();
      const uint64_t n = chunk.size();
      LXMIG_RETURN_IF_ERROR(em.data(pages, off, std::exchange(chunk, {})));
      off += n;
      return okStatus();
    });
    if (sent.ok() && !chunk.empty()) {
      const uint64_t n = chunk.size();
      sent = em.data(pages, off, std::move(chunk));
      off += n;
    }
    LXMIG_RETURN_IF_ERROR(sent.withContext("shared memory " + std::to_string(shmid)));
    LXMIG_RETURN_IF_ERROR(em.file(pages, off));
    // Pages that became holes or failed to go are no longer counted on.
    obj.pages = std::move(now);
    PageSet held;
    for (const auto& pg : obj.pages) held.add(pg.first, pg.first + kPageSize);
    rs.set_pages_sent(rs.pages_sent() + off / kPageSize);
    criu::Pagemap pm = roundPagemap(pagesId, held, changed);
    if (!obj.named) {
      obj.memfdName = criuMemfdName(opener);
      obj.named = true;
    }
    pm.memfdName = obj.memfdName;  // the target keeps the object in a memfd of that name
    LXMIG_RETURN_IF_ERROR(em.whole(dir + "/pagemap-shmem-" + std::to_string(shmid) + ".img", serializePagemap(pm)));
    ++pagesId;
  }
  const int64_t tEnd = monotonicNs();
  LXMIG_LOG(kDebug, kLog) << "round " << roundsDone_ << ": " << em.sent() << " bytes, read " << readNs / 1000000
                          << " ms, send " << sendNs / 1000000 << " ms, total " << (tEnd - tSend) / 1000000 << " ms";
  rs.set_bytes(em.sent());
  stopRule_.sawRound(footprint, rs.dirty_pages() * kPageSize, rs.bytes());
  if (tEnd > tSend && rs.bytes() > (1u << 20)) {
    double rate = static_cast<double>(rs.bytes()) * 1e9 / static_cast<double>(tEnd - tSend);
    sendRate_ = sendRate_ > 0 ? 0.5 * sendRate_ + 0.5 * rate : rate;
  }
  rs.set_send_rate_bps(sendRate_);
  rs.set_duration_ms((tEnd - t0) / 1000000);
  ++roundsDone_;
  return rs;
}

Result<FinalStats> PreCopy::finalScan() {
  FinalStats fs;
  const int64_t t0 = monotonicNs();
  LXMIG_RETURN_IF_ERROR(refreshProcesses(false));
  std::map<pid_t, PageSet> toSend;
  LXMIG_ASSIGN_OR_RETURN(fs.dirtyPages, scan(toSend, false));
  for (const auto& [pid, p] : procs_) fs.validPages += p->valid.bytes() / kPageSize;
  fs.scanUs = (monotonicNs() - t0) / 1000;
  return fs;
}

std::map<uint32_t, PageSet> PreCopy::predictedDump() const {
  std::map<uint32_t, PageSet> out;
  for (const auto& [pid, p] : procs_) {
    if (!p->armed) continue;  // never sent: the target holds nothing of it
    auto dumped = dumpedPages(pid);
    if (!dumped.ok()) continue;  // gone: the dump will say
    PageSet& s = out[static_cast<uint32_t>(p->vpid)];
    s = std::move(*dumped);
    for (const auto& r : p->valid.ranges()) s.add(r);
  }
  return out;
}

std::map<uint32_t, PageSet> PreCopy::heldPages() const {
  std::map<uint32_t, PageSet> out;
  std::set<uint32_t> twice;
  for (const auto& [pid, p] : procs_) {
    const auto vpid = static_cast<uint32_t>(p->vpid);
    if (!out.emplace(vpid, p->valid).second) twice.insert(vpid);
  }
  for (uint32_t v : twice) out.erase(v);
  return out;
}

std::vector<uint64_t> PreCopy::rebuiltSharedObjects() const {
  std::vector<uint64_t> out;
  if (frozenObjects_)
    for (const auto& [shmid, path] : *frozenObjects_) out.push_back(shmid);
  return out;
}

Result<PageSet> PreCopy::unchangedPages(uint64_t shmid, int fd, const std::string& name, std::vector<char>& buf) const {
  PageSet same;
  auto held = shared_.find(shmid);
  if (held == shared_.end()) return same;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::fromErrno("stat", name);
  const auto& sent = held->second.pages;
  size_t j = 0;
  LXMIG_RETURN_IF_ERROR(
      forEachDataPage(fd, name, static_cast<uint64_t>(st.st_size), buf, [&](uint64_t a, const char* page) {
        while (j < sent.size() && sent[j].first < a) ++j;
        if (j < sent.size() && sent[j].first == a && sent[j].second == XXH3_64bits(page, kPageSize))
          same.add(a, a + kPageSize);
        return okStatus();
      }));
  return same;
}

Status PreCopy::compareSharedFrozen() {
  frozenSame_.clear();
  if (!frozenObjects_ || roundsDone_ == 0) return okStatus();
  std::vector<char> buf;  // buf_ is rewriteDump's
  for (const auto& [shmid, path] : *frozenObjects_) {
    if (!shared_.count(shmid)) continue;
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::fromErrno("open shared memory " + std::to_string(shmid) + " as", path);
    LXMIG_ASSIGN_OR_RETURN(frozenSame_[shmid], unchangedPages(shmid, in.get(), path, buf));
  }
  return okStatus();
}

size_t PreCopy::pageFilesBeforeSysv() {
  auto pids = pids_();
  if (!pids.ok()) return 0;
  auto objects = shmemObjects(*pids);
  if (!objects.ok()) return pids->size();
  frozenObjects_ = std::move(*objects);
  return pids->size() + frozenObjects_->size();
}

// Writes the present pages of `entries`, read from `src` at their
// addresses (a process's /proc/PID/mem, or a shared memory object at its
// offsets), to `out` (the file `outPath`), appending only.
Status PreCopy::readPagesInto(int src, const std::string& srcName, const std::vector<PagemapEntry>& entries,
                              const std::string& outPath, int out, pid_t pid) {
  if (buf_.size() < kReadBytes) buf_.resize(kReadBytes);
  // Up to kReadBytes from up to kMaxIov ranges at a time, in file order.
  std::vector<iovec> remote;
  size_t filled = 0;
  auto flush = [&]() -> Status {
    if (filled == 0) return okStatus();
    ssize_t n = -1;
    if (pid > 0) {
      iovec local{buf_.data(), filled};
      n = ::process_vm_readv(pid, &local, 1, remote.data(), remote.size(), 0);
    }
    if (n != static_cast<ssize_t>(filled)) {
      // A process: a range process_vm_readv refuses (PROT_NONE; the
      // frozen process cannot have unmapped it) is read through
      // /proc/PID/mem, which reads those too. Anything else: the file.
      // After a short read the ranges it read whole stay; the rest, from
      // the first range it did not finish, is read here.
      size_t at = 0, skip = 0;
      for (size_t done = n > 0 ? static_cast<size_t>(n) : 0; skip < remote.size() && at + remote[skip].iov_len <= done;)
        at += remote[skip++].iov_len;
      for (const auto& r : std::span(remote).subspan(skip)) {
        ssize_t k =
            ::pread(src, buf_.data() + at, r.iov_len, static_cast<off_t>(reinterpret_cast<uintptr_t>(r.iov_base)));
        if (k != static_cast<ssize_t>(r.iov_len))
          return Status::fromErrno("read pages from", srcName, k < 0 ? errno : EIO);
        at += r.iov_len;
      }
    }
    if (::write(out, buf_.data(), filled) != static_cast<ssize_t>(filled)) return Status::fromErrno("write", outPath);
    remote.clear();
    filled = 0;
    return okStatus();
  };
  for (const auto& e : entries) {
    if (!(e.flags & kPePresent)) continue;
    const uint64_t end = e.vaddr + e.pages * kPageSize;
    for (uint64_t a = e.vaddr; a < end;) {
      if (filled == kReadBytes || remote.size() == kMaxIov) LXMIG_RETURN_IF_ERROR(flush());
      const size_t len = static_cast<size_t>(std::min<uint64_t>(kReadBytes - filled, end - a));
      remote.push_back({reinterpret_cast<void*>(a), len});
      filled += len;
      a += len;
    }
  }
  return flush();
}

namespace {

// The file that takes the place of a discarded page file's link, in the
// same place: the delta is appended to it and `growing` (the sender) is
// told its name, so it goes to the target while it is written.
Result<UniqueFd> replaceDiscarded(const std::string& imagesDir, const std::string& pagesPath,
                                  const std::function<void(const std::string& name)>& growing) {
  if (::unlink(pagesPath.c_str()) != 0) return Status::fromErrno("remove the discarded link", pagesPath);
  UniqueFd out(::open(pagesPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return Status::fromErrno("create", pagesPath);
  if (growing) growing(pagesPath.substr(imagesDir.size() + 1));
  return out;
}

}  // namespace

Status PreCopy::rewriteDump(const std::string& imagesDir, FinalStats& fs,
                            const std::function<void(const std::string& name)>& growing, bool realFilesSent) {
  if (roundsDone_ == 0) return okStatus();
  int64_t lapAt = monotonicNs();
  auto lap = [&lapAt] {
    const int64_t now = monotonicNs();
    return (now - std::exchange(lapAt, now)) / 1000;
  };
  // Host pid of every process of the (frozen) container by its pid inside.
  std::map<pid_t, pid_t> hostPid;
  if (auto pids = pids_(); pids.ok())
    for (pid_t p : *pids)
      if (auto id = pidIdentity(p); id.ok()) hostPid[id->vpid] = p;
  std::map<pid_t, const Proc*> byVpid;
  for (const auto& [pid, p] : procs_) byVpid[p->vpid] = p.get();

  LXMIG_ASSIGN_OR_RETURN(auto names, listDir(imagesDir));
  std::vector<std::pair<pid_t, std::string>> pagemaps;
  std::vector<std::pair<uint64_t, std::string>> shmemPagemaps;  // by shmid
  for (const auto& n : names) {
    if (auto shmid = imageNumber("pagemap-shmem-", n, UINT64_MAX))
      shmemPagemaps.emplace_back(*shmid, imagesDir + "/" + n);
    else if (auto pid = imageNumber("pagemap-", n, INT32_MAX); pid && *pid > 0)
      pagemaps.emplace_back(static_cast<pid_t>(*pid), imagesDir + "/" + n);
  }
  fs.rewriteListUs += lap();
  // Shared memory CRIU wrote to a discarded page file (memfd files and
  // shared anonymous mappings take numbers among the processes') is read
  // back from the object itself, through a frozen process that maps or
  // holds it. A page file of a SysV segment is never discarded (they come
  // last); one found discarded means the numbering was not as expected.
  for (const auto& [shmid, sp] : shmemPagemaps) {
    auto text = readFile(sp);
    auto pm = text.ok() ? parsePagemap(*text) : Result<Pagemap>(text.status());
    if (!pm.ok()) return pm.status().withContext(sp);
    const std::string pagesPath = imagesDir + "/pages-" + std::to_string(pm->pagesId) + ".img";
    if (!isDiscarded(pagesPath)) continue;
    const std::string name = sp.substr(sp.rfind('/') + 1);
    if (!frozenObjects_) {  // the dump discarded nothing of ours: found now
      auto pids = pids_();
      if (!pids.ok()) return pids.status();
      LXMIG_ASSIGN_OR_RETURN(auto found, shmemObjects(*pids));
      frozenObjects_ = std::move(found);
    }
    const auto& objects = *frozenObjects_;
    auto obj = objects.find(shmid);
    if (obj == objects.end())
      return failedPrecondition("CRIU wrote shared memory `" + sp + "` into a discarded page file");
    UniqueFd in(::open(obj->second.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::fromErrno("open shared memory " + name + " as", obj->second);
    // Pages whose content is still what the target holds become PARENT;
    // the others are read into the delta. Compared beside the dump when
    // compareSharedFrozen() got to it.
    PageSet same;
    if (auto pre = frozenSame_.find(shmid); pre != frozenSame_.end()) {
      same = std::move(pre->second);
      frozenSame_.erase(pre);
    } else {
      LXMIG_ASSIGN_OR_RETURN(same, unchangedPages(shmid, in.get(), obj->second, buf_));
    }
    PagemapRewrite rw = rewritePagemap(*pm, same);
    LXMIG_ASSIGN_OR_RETURN(UniqueFd out, replaceDiscarded(imagesDir, pagesPath, growing));
    LXMIG_RETURN_IF_ERROR(readPagesInto(in.get(), obj->second, rw.pagemap.entries, pagesPath, out.get()));
    LXMIG_RETURN_IF_ERROR(writeFileAtomic(sp, serializePagemap(rw.pagemap), 0600));
    fs.parentPages += rw.parentPages;
    fs.deltaPages += rw.presentPages;
  }
  fs.rewriteReadUs += lap();  // shared memory: read and compared whole

  for (const auto& [vpid, pmPath] : pagemaps) {
    auto text = readFile(pmPath);
    auto pm = text.ok() ? parsePagemap(*text) : Result<Pagemap>(text.status());
    if (!pm.ok()) return pm.status().withContext(pmPath);
    const std::string pagesPath = imagesDir + "/pages-" + std::to_string(pm->pagesId) + ".img";
    const bool discarded = isDiscarded(pagesPath);
    auto proc = byVpid.find(vpid);
    const PageSet none;
    const PageSet& valid = proc != byVpid.end() ? proc->second->valid : none;
    // A CRIU built with lxmig's patch left out what the target holds itself
    // (held_pages.h): those pages are PARENT already, and the page file it
    // wrote holds the rest. A real page file may be on its way to the
    // target since the dump (realFilesSent): it is never rewritten then.
    const uint64_t heldByCriu = pagesWith(*pm, kPeParent);
    if (!discarded && valid.empty()) continue;  // CRIU's files travel as they are
    fs.criuHeldPages += heldByCriu;
    if (!discarded && (heldByCriu > 0 || realFilesSent)) {
      fs.parentPages += heldByCriu;
      fs.deltaPages += pagesWith(*pm, kPePresent);
      continue;
    }
    PagemapRewrite rw = rewritePagemap(*pm, valid);
    fs.rewritePagemapUs += lap();
    fs.parentPages += heldByCriu;
    if (discarded) {
      // CRIU's copy went to /dev/null: read the delta from the frozen
      // process itself (/proc/PID/mem reads PROT_NONE pages too), into a
      // new file in the link's place.
      auto hp = hostPid.find(vpid);
      if (hp == hostPid.end())
        return failedPrecondition("no process with pid " + std::to_string(vpid) + " in the container");
      const std::string memPath = "/proc/" + std::to_string(hp->second) + "/mem";
      UniqueFd mem(::open(memPath.c_str(), O_RDONLY | O_CLOEXEC));
      if (!mem) return Status::fromErrno("open", memPath);
      LXMIG_ASSIGN_OR_RETURN(UniqueFd out, replaceDiscarded(imagesDir, pagesPath, growing));
      LXMIG_RETURN_IF_ERROR(readPagesInto(mem.get(), memPath, rw.pagemap.entries, pagesPath, out.get(), hp->second));
      fs.rewriteReadUs += lap();
    } else {
      const std::string tmp = pagesPath + ".delta";
      UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!out) return Status::fromErrno("create", tmp);
      UniqueFd in(::open(pagesPath.c_str(), O_RDONLY | O_CLOEXEC));
      if (!in) return Status::fromErrno("open", pagesPath);
      uint64_t outOff = 0;
      for (const auto& [off, len] : rw.copy) {
        LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), off, out.get(), outOff, len, tmp));
        outOff += len;
      }
      if (::rename(tmp.c_str(), pagesPath.c_str()) != 0) return Status::fromErrno("rename", tmp);
    }
    LXMIG_RETURN_IF_ERROR(writeFileAtomic(pmPath, serializePagemap(rw.pagemap), 0600));
    fs.rewritePagemapUs += lap();
    fs.parentPages += rw.parentPages;
    fs.deltaPages += rw.presentPages;
  }
  // Discard links CRIU did not use.
  for (uint32_t k = 1;; ++k) {
    std::string l = imagesDir + "/pages-" + std::to_string(k) + ".img";
    if (!isDiscarded(l)) {
      if (!pathExists(l) && k > 64) break;
      continue;
    }
    ::unlink(l.c_str());
  }
  fs.rewriteListUs += lap();
  return okStatus();
}

bool isDiscarded(const std::string& path) {
  char buf[32] = {0};
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 && std::string(buf, static_cast<size_t>(n)) == "/dev/null";
}

void PreCopy::disarm() {
  for (auto& [pid, p] : procs_)
    if (p->tracker) p->tracker->disarm();
}

}  // namespace lxmig::migration
