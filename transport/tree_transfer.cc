#include "lxmig/transport/tree_transfer.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/transport/data_link.h"
#include "mapped_file.h"

namespace lxmig::transport {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
constexpr uint64_t kPageBytes = 4096;  // the read that finds EOF
// No file of a container is larger (the ext4 limit is 16 TiB).
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 44;

// One data chunk of `rel` at `off`.
Status sendData(const std::string& id, v1::TransferChunk::Area area, const std::string& rel, uint64_t off,
                std::string data, const ChunkSink& sink, const BytesCallback& onBytes) {
  const uint64_t n = data.size();
  v1::TransferChunk c;
  c.set_migration_id(id);
  c.set_area(area);
  c.set_path(rel);
  c.set_offset(off);
  c.set_data(std::move(data));
  if (!sink(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
  if (onBytes) onBytes(n);
  return okStatus();
}

// Sends bytes [from, to) of an open file (to = UINT64_MAX: until EOF) as
// data chunks with a checksum each. Returns the offset reached.
//
// Reads are sized by what the file holds (a 1 MiB read for a 300-byte
// image meant a 1 MiB zero fill of its buffer, in the frozen window), and
// go on until EOF, so a file that grows meanwhile is still sent whole.
// Every buffer goes back to the pool, the one that met EOF too.
Result<uint64_t> sendRange(const std::string& id, v1::TransferChunk::Area area, const std::string& rel, int fd,
                           uint64_t from, uint64_t to, const ChunkSink& sink, const BytesCallback& onBytes) {
  uint64_t off = from, size = 0;
  while (off < to) {
    if (off >= size) {  // first read, or past what the file held: look again
      struct stat st {};
      if (::fstat(fd, &st) != 0) return Status::fromErrno("stat", rel);
      size = static_cast<uint64_t>(st.st_size);
    }
    const uint64_t left = off < size ? size - off : kPageBytes;
    const size_t want = static_cast<size_t>(std::min<uint64_t>({kChunkBytes, to - off, left}));
    std::string buf = takeBuffer(want);
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (n <= 0) {
      recycleBuffer(std::move(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::fromErrno("read", rel);
      break;
    }
    buf.resize(static_cast<size_t>(n));
    LXMIG_RETURN_IF_ERROR(sendData(id, area, rel, off, std::move(buf), sink, onBytes));
    off += static_cast<uint64_t>(n);
  }
  return off;
}

// The blocks of a file sent before whose hash differs from `old` (or that
// lie beyond it), hashed through a mapping (mapped_file.h); fills `hashes`
// with every block's, each changed one as sent. False when the file faulted
// under the mapping or could not be mapped: the caller reads it the plain
// way (what was sent meanwhile is sent again, at the same offsets).
Result<bool> sendChangedMapped(const std::string& id, v1::TransferChunk::Area area, const std::string& rel, int fd,
                               uint64_t size, const std::vector<uint64_t>& old, std::vector<uint64_t>& hashes,
                               const ChunkSink& sink, const BytesCallback& onBytes) {
  constexpr uint64_t kWindowBytes = 64 << 20;
  static_assert(kWindowBytes % kChunkBytes == 0 && kChunkBytes % kTreeBlockBytes == 0);
  hashes.assign(static_cast<size_t>((size + kTreeBlockBytes - 1) / kTreeBlockBytes), 0);
  for (uint64_t off = 0; off < size; off += kWindowBytes) {
    const MappedWindow w(fd, off, static_cast<size_t>(std::min(kWindowBytes, size - off)));
    uint64_t* h = hashes.data() + off / kTreeBlockBytes;
    if (!w.ok() || !w.hashBlocks(kTreeBlockBytes, h)) return false;
    const size_t first = static_cast<size_t>(off / kTreeBlockBytes);
    auto same = [&](size_t b) { return first + b < old.size() && old[first + b] == h[b]; };
    const size_t blocks = static_cast<size_t>((w.size() + kTreeBlockBytes - 1) / kTreeBlockBytes);
    for (size_t b = 0; b < blocks;) {
      if (same(b)) {
        ++b;
        continue;
      }
      // A run of changed blocks, a chunk at most: copied out of the page
      // cache, hashed again as copied (a running container may have written
      // meanwhile: the manifest keeps what the receiver holds).
      size_t e = b + 1;
      while (e < blocks && !same(e) && (e - b) * kTreeBlockBytes < kChunkBytes) ++e;
      const size_t from = b * kTreeBlockBytes, n = std::min<size_t>(e * kTreeBlockBytes, w.size()) - from;
      std::string buf = takeBuffer(n);
      if (!w.copy(from, n, buf.data())) {
        recycleBuffer(std::move(buf));
        return false;
      }
      hashBlocks(buf.data(), n, kTreeBlockBytes, h + b);
      LXMIG_RETURN_IF_ERROR(sendData(id, area, rel, off + from, std::move(buf), sink, onBytes));
      b = e;
    }
  }
  return true;
}

// Sends a regular file's first `size` bytes: every block when `old` is
// null, else only the blocks whose hash differs from `old` (or that lie
// beyond it). Fills `hashes` with every block's.
Status sendBlocks(const std::string& id, v1::TransferChunk::Area area, const std::string& rel, int fd, uint64_t size,
                  const std::vector<uint64_t>* old, std::vector<uint64_t>& hashes, const ChunkSink& sink,
                  const BytesCallback& onBytes) {
  static_assert(kChunkBytes % kTreeBlockBytes == 0);
  if (old) {  // read again for a few changed blocks: hashed where the page cache holds them
    LXMIG_ASSIGN_OR_RETURN(bool done, sendChangedMapped(id, area, rel, fd, size, *old, hashes, sink, onBytes));
    if (done) return okStatus();
  }
  hashes.clear();
  hashes.reserve(static_cast<size_t>((size + kTreeBlockBytes - 1) / kTreeBlockBytes));
  auto send = [&](uint64_t off, std::string data) {
    return sendData(id, area, rel, off, std::move(data), sink, onBytes);
  };
  for (uint64_t off = 0; off < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, size - off));
    std::string buf = takeBuffer(want);
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) {
      recycleBuffer(std::move(buf));
      continue;
    }
    if (n <= 0) {  // shrank while read: the receiver's copy is cut at `size`, the next pass sees the change
      recycleBuffer(std::move(buf));
      if (n < 0) return Status::fromErrno("read", rel);
      break;
    }
    const size_t got = static_cast<size_t>(n);
    buf.resize(got);
    // Runs of changed blocks, as [begin, end) byte offsets in buf.
    std::vector<std::pair<size_t, size_t>> runs;
    for (size_t b = 0; b < got; b += kTreeBlockBytes) {
      const size_t len = std::min<size_t>(kTreeBlockBytes, got - b);
      const uint64_t h = XXH3_64bits(buf.data() + b, len);
      const size_t index = hashes.size();
      hashes.push_back(h);
      if (old && index < old->size() && (*old)[index] == h) continue;
      if (!runs.empty() && runs.back().second == b) runs.back().second = b + len;
      else runs.emplace_back(b, b + len);
    }
    if (runs.size() == 1 && runs[0].first == 0 && runs[0].second == got) {
      LXMIG_RETURN_IF_ERROR(send(off, std::move(buf)));  // all of it, without a copy
    } else {
      for (const auto& [b, e] : runs) LXMIG_RETURN_IF_ERROR(send(off + b, buf.substr(b, e - b)));
      recycleBuffer(std::move(buf));
    }
    off += got;
    if (got % kTreeBlockBytes != 0) break;  // a short read: blocks would no longer line up
  }
  return okStatus();
}

v1::TransferChunk metaChunk(const std::string& id, v1::TransferChunk::Area area, const std::string& rel,
                            const struct stat& st, v1::FileMeta::Type type, const std::string& link) {
  v1::TransferChunk c;
  c.set_migration_id(id);
  c.set_area(area);
  c.set_path(rel);
  auto* m = c.mutable_meta();
  m->set_type(type);
  m->set_mode(st.st_mode & 07777);
  m->set_uid(st.st_uid);
  m->set_gid(st.st_gid);
  m->set_mtime_ns(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec);
  m->set_size(static_cast<uint64_t>(st.st_size));
  m->set_link_target(link);
  return c;
}

// The (possibly running) container's tree, walked through directory fds.
struct Walker {
  const std::string& id;
  v1::TransferChunk::Area area;
  const std::string& root;
  const Manifest& previous;
  const ChunkSink& sink;
  const BytesCallback& onBytes;
  const std::map<std::string, uint64_t>* resume;
  const std::vector<std::string>& first;
  Manifest now;
  dev_t dev = 0;
  int64_t startedNs = 0;  // wall clock when the pass began
  // The name each file of several names was sent under this pass.
  std::map<std::pair<dev_t, ino_t>, std::string> firstNames;
  static constexpr int64_t kCoarseClockNs = 50'000'000;
  static constexpr int64_t kUnsettled = INT64_MIN;

  std::string shown(const std::string& rel) const { return rel.empty() ? root : root + "/" + rel; }

  Status sendMeta(const std::string& rel, const struct stat& st, v1::FileMeta::Type type, const std::string& link) {
    auto c = metaChunk(id, area, rel, st, type, link);
    if (!sink(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
    return okStatus();
  }

  Status sendDeleted(const std::string& rel) {
    v1::TransferChunk c;
    c.set_migration_id(id);
    c.set_area(area);
    c.set_path(rel);
    c.mutable_meta()->set_type(v1::FileMeta::DELETED);
    if (!sink(c)) return unavailable("transfer stream broke while deleting `" + rel + "`");
    return okStatus();
  }

  // `rel` is another name of the file sent as `firstName` this pass.
  Status sendHardLink(const std::string& rel, const struct stat& st, const std::string& firstName) {
    EntryState es;
    es.type = v1::FileMeta::HARDLINK;
    es.linkTo = firstName;
    const bool send = changed(rel, es);
    now[rel] = std::move(es);
    return send ? sendMeta(rel, st, v1::FileMeta::HARDLINK, firstName) : okStatus();
  }

  // A file from where a TailSender left it; otherwise the blocks that
  // differ from the previous pass's (all of them the first time).
  Status sendFile(const std::string& rel, int fd, const struct stat& st, EntryState& es) {
    uint64_t from = 0;
    if (resume) {
      auto it = resume->find(rel);
      if (it != resume->end()) from = it->second;
    }
    if (from > static_cast<uint64_t>(st.st_size))
      return failedPrecondition("`" + shown(rel) + "` shrank while it was being sent");
    LXMIG_RETURN_IF_ERROR(sendMeta(rel, st, v1::FileMeta::REGULAR, ""));
    if (from > 0) return sendRange(id, area, rel, fd, from, UINT64_MAX, sink, onBytes).status();
    auto it = previous.find(rel);
    const bool known = it != previous.end() && it->second.type == v1::FileMeta::REGULAR && !it->second.blocks.empty();
    return sendBlocks(id, area, rel, fd, static_cast<uint64_t>(st.st_size), known ? &it->second.blocks : nullptr,
                      es.blocks, sink, onBytes);
  }

  EntryState stateOf(const struct stat& st, v1::FileMeta::Type type) const {
    EntryState es;
    es.type = type;
    es.size = type == v1::FileMeta::DIRECTORY ? 0 : static_cast<uint64_t>(st.st_size);
    // Directory mtimes change with every file; their content is walked anyway.
    es.mtimeNs = type == v1::FileMeta::DIRECTORY ? 0 : int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    // A file changed within the last moments may change again with the same
    // time (the kernel's clock for file times is coarse): it is looked at
    // again next pass, whatever its time then.
    if (type == v1::FileMeta::REGULAR && es.mtimeNs > startedNs - kCoarseClockNs) es.mtimeNs = kUnsettled;
    es.mode = st.st_mode;
    // Renamed over by a file of the same size and time: another file all the same.
    if (type == v1::FileMeta::REGULAR) es.ino = st.st_ino;
    return es;
  }
  bool changed(const std::string& rel, const EntryState& es) const {
    auto it = previous.find(rel);
    return it == previous.end() || es.mtimeNs == kUnsettled || !it->second.sameMeta(es);
  }

  // One entry of the directory `dirfd`. Whatever it is when opened (with
  // O_NOFOLLOW) is what is sent; one that changed type since it was listed
  // is skipped (the pass after the freeze sees it still).
  Status entry(int dirfd, const std::string& rel, const std::string& name, size_t depth) {
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return okStatus();  // vanished while walking a running container
      return Status::fromErrno("stat", shown(rel));
    }
    if (S_ISLNK(st.st_mode)) {
      EntryState es = stateOf(st, v1::FileMeta::SYMLINK);
      now[rel] = es;
      if (!changed(rel, es)) return okStatus();
      char target[kMaxPath + 1];
      ssize_t len = ::readlinkat(dirfd, name.c_str(), target, sizeof target);
      if (len < 0 || static_cast<size_t>(len) > kMaxPath) {
        now.erase(rel);
        return okStatus();  // replaced meanwhile, or longer than any path the target accepts
      }
      return sendMeta(rel, st, v1::FileMeta::SYMLINK, std::string(target, static_cast<size_t>(len)));
    }
    if (S_ISFIFO(st.st_mode)) {  // the node itself: CRIU opens it by its path
      EntryState es = stateOf(st, v1::FileMeta::FIFO);
      es.size = 0;
      es.mtimeNs = 0;  // its bytes move through the images, not its mtime
      now[rel] = es;
      return changed(rel, es) ? sendMeta(rel, st, v1::FileMeta::FIFO, "") : okStatus();
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return okStatus();  // sockets and devices: CRIU, autodev
    // O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd || ::fstat(fd.get(), &st) != 0) {
      if (errno == ENOENT || errno == ELOOP || errno == ENXIO) return okStatus();
      return Status::fromErrno("open", shown(rel));
    }
    if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1) {
        auto [known, fresh] = firstNames.try_emplace({st.st_dev, st.st_ino}, rel);
        if (!fresh) return sendHardLink(rel, st, known->second);
      }
      EntryState es = stateOf(st, v1::FileMeta::REGULAR);
      if (changed(rel, es)) {
        // The receiver's copy is another name of a file it holds under a
        // name sent earlier: written in place, that file would change too.
        auto was = previous.find(rel);
        if (was != previous.end() && was->second.type == v1::FileMeta::HARDLINK)
          LXMIG_RETURN_IF_ERROR(sendDeleted(rel));
        LXMIG_RETURN_IF_ERROR(sendFile(rel, fd.get(), st, es));
      } else {
        es.blocks = previous.at(rel).blocks;
      }
      now[rel] = std::move(es);
      return okStatus();
    }
    if (!S_ISDIR(st.st_mode)) return okStatus();
    EntryState es = stateOf(st, v1::FileMeta::DIRECTORY);
    now[rel] = es;
    if (changed(rel, es)) LXMIG_RETURN_IF_ERROR(sendMeta(rel, st, v1::FileMeta::DIRECTORY, ""));
    if (st.st_dev != dev) return okStatus();  // another filesystem mounted here
    return walk(fd.get(), rel, depth + 1);
  }

  Status walk(int dirfd, const std::string& rel, size_t depth) {
    if (depth > kMaxPathDepth) return failedPrecondition("`" + shown(rel) + "` is nested deeper than 256 levels");
    LXMIG_ASSIGN_OR_RETURN(auto entries, listDirAt(dirfd, shown(rel)));
    std::vector<std::string> names;
    names.reserve(entries.size());
    for (auto& e : entries) names.push_back(std::move(e.name));
    std::sort(names.begin(), names.end());
    if (rel.empty() && !first.empty())
      std::stable_partition(names.begin(), names.end(), [&](const std::string& n) {
        return std::any_of(first.begin(), first.end(), [&](const std::string& f) { return startsWith(n, f); });
      });
    for (const auto& n : names) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      if (r.size() > kMaxPath)
        return failedPrecondition("`" + shown(r).substr(0, 200) + "...` is a path longer than 4096 bytes");
      LXMIG_RETURN_IF_ERROR(entry(dirfd, r, n, depth));
    }
    return okStatus();
  }
};

// The tree's root, opened without following a link.
Result<UniqueFd> openRoot(const std::string& root, struct stat* st) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Status::fromErrno("open", root);
  if (::fstat(fd.get(), st) != 0) return Status::fromErrno("stat", root);
  return fd;
}

// `linked`: the files of several names counted so far.
uint64_t bytesBelow(int dirfd, dev_t dev, size_t depth, std::set<ino_t>& linked) {
  if (depth > kMaxPathDepth) return 0;
  uint64_t total = 0;
  for (const auto& e : listDirAt(dirfd, "").value_or({})) {
    struct stat st {};
    if (::fstatat(dirfd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISREG(st.st_mode) && (st.st_nlink < 2 || linked.insert(st.st_ino).second))
      total += static_cast<uint64_t>(st.st_size);
    if (!S_ISDIR(st.st_mode) || st.st_dev != dev) continue;
    UniqueFd sub(::openat(dirfd, e.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub) total += bytesBelow(sub.get(), dev, depth + 1, linked);
  }
  return total;
}

}  // namespace

Result<Manifest> sendTree(const std::string& migrationId, v1::TransferChunk::Area area, const std::string& root,
                          const Manifest& previous, const ChunkSink& sink, const BytesCallback& onBytes,
                          const std::map<std::string, uint64_t>* resume, const std::vector<std::string>& first) {
  struct stat st {};
  LXMIG_ASSIGN_OR_RETURN(UniqueFd rootFd, openRoot(root, &st));
  return sendTreeAt(migrationId, area, rootFd.get(), root, previous, sink, onBytes, resume, first);
}

Result<Manifest> sendTreeAt(const std::string& migrationId, v1::TransferChunk::Area area, int rootFd,
                            const std::string& shown, const Manifest& previous, const ChunkSink& sink,
                            const BytesCallback& onBytes, const std::map<std::string, uint64_t>* resume,
                            const std::vector<std::string>& first) {
  struct stat st {};
  if (::fstat(rootFd, &st) != 0) return Status::fromErrno("stat", shown);
  if (!S_ISDIR(st.st_mode)) return failedPrecondition(shown + " is not a directory");
  Walker w{migrationId, area, shown, previous, sink, onBytes, resume, first, {}, st.st_dev, wallMs() * 1000000};
  // The root's own mode and owner first: CRIU checks the rootfs mode.
  LXMIG_RETURN_IF_ERROR(w.sendMeta(".", st, v1::FileMeta::DIRECTORY, ""));
  LXMIG_RETURN_IF_ERROR(w.walk(rootFd, "", 0));
  // Deletions, deepest first so directories are empty when removed.
  for (auto it = previous.rbegin(); it != previous.rend(); ++it)
    if (!w.now.count(it->first)) LXMIG_RETURN_IF_ERROR(w.sendDeleted(it->first));
  return std::move(w.now);
}

TailSender::TailSender(std::string migrationId, v1::TransferChunk::Area area, std::string root, std::string prefix)
    : id_(std::move(migrationId)), area_(area), root_(std::move(root)), prefix_(std::move(prefix)) {}

Result<uint64_t> TailSender::poll(const ChunkSink& sink, const BytesCallback& onBytes,
                                  const std::function<bool(const std::string&)>& follow) {
  std::vector<std::string> names;
  for (auto& n : listDir(root_).value_or({}))  // not created yet: nothing to send
    if (startsWith(n, prefix_) && (!follow || follow(n))) names.push_back(std::move(n));
  std::sort(names.begin(), names.end());
  uint64_t total = 0;
  for (const auto& name : names) {
    std::string abs = root_ + "/" + name;
    UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) continue;  // not there yet
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    ino_t firstSeen = inodes_.try_emplace(name, st.st_ino).first->second;
    uint64_t& done = sent_[name];
    // Only append-only files may be followed: anything else fails the
    // migration rather than sending a stale copy.
    if (firstSeen != st.st_ino || static_cast<uint64_t>(st.st_size) < done)
      return failedPrecondition("`" + abs + "` was replaced or shrank while it was being streamed");
    if (static_cast<uint64_t>(st.st_size) == done) continue;
    auto c = metaChunk(id_, area_, name, st, v1::FileMeta::REGULAR, "");
    if (!sink(c)) return unavailable("transfer stream broke while sending `" + name + "`");
    LXMIG_ASSIGN_OR_RETURN(uint64_t reached, sendRange(id_, area_, name, fd.get(), done,
                                                       static_cast<uint64_t>(st.st_size), sink, onBytes));
    total += reached - done;
    done = reached;
  }
  return total;
}

uint64_t treeBytes(const std::string& root) {
  struct stat st {};
  auto fd = openRoot(root, &st);
  std::set<ino_t> linked;
  return fd.ok() ? bytesBelow(fd->get(), st.st_dev, 0, linked) : 0;
}

Status ByteBudget::take(uint64_t n, const std::string& what) {
  uint64_t left = left_.load();
  do {
    if (n > left)
      return resourceExhausted(what + ": more than the " + humanBytes(total_.load()) + " announced for this migration");
  } while (!left_.compare_exchange_weak(left, left - n));
  return okStatus();
}

// ---- receiving ----

namespace {

// A name no transfer entry takes for long: entries are built under it, then
// put in place in one step.
std::string tempName(const std::string& leaf) {
  static std::atomic<uint64_t> counter{0};
  return ".lxmig-new." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." + leaf.substr(0, 64);
}

}  // namespace

TreeWriter::~TreeWriter() {
  if (file_ && !curTmp_.empty()) ::unlinkat(fileDir_.get(), curTmp_.c_str(), 0);
}

Result<UniqueFd> TreeWriter::parentOf(const std::string& rel, std::string* leaf) {
  if (!rootFd_) {
    rootFd_ = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!rootFd_) return Status::fromErrno("open", root_);
  }
  const size_t slash = rel.rfind('/');
  *leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  const std::string dir = slash == std::string::npos ? "." : rel.substr(0, slash);
  return openDirBeneath(rootFd_.get(), dir, root_ + "/" + dir, true);
}

Status TreeWriter::replace(int parent, const std::string& tmp, const std::string& leaf, const std::string& shown) {
  if (::renameat2(parent, tmp.c_str(), parent, leaf.c_str(), RENAME_NOREPLACE) == 0) return okStatus();
  if (errno != EEXIST) return Status::fromErrno("rename into place", shown);
  // Something else is there: exchange, then remove it under the temporary name.
  if (::renameat2(parent, tmp.c_str(), parent, leaf.c_str(), RENAME_EXCHANGE) != 0)
    return Status::fromErrno("exchange into place", shown);
  return removeTreeAt(parent, tmp, shown + " (replaced)");
}

Status TreeWriter::makeDirectory(const std::string& rel, const v1::FileMeta& m) {
  const std::string shown = root_ + "/" + rel;
  UniqueFd dir;
  if (rel == ".") {
    dir = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) return Status::fromErrno("open", shown);
  } else {
    std::string leaf;
    LXMIG_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(rel, &leaf));
    dir = UniqueFd(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir && errno != ENOENT && errno != ENOTDIR && errno != ELOOP) return Status::fromErrno("open", shown);
    if (!dir) {  // missing, or of another type: built aside, then put in place
      const std::string tmp = tempName(leaf);
      if (::mkdirat(parent.get(), tmp.c_str(), 0700) != 0) return Status::fromErrno("mkdir", shown);
      LXMIG_RETURN_IF_ERROR(replace(parent.get(), tmp, leaf, shown));
      dir = UniqueFd(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir) return Status::fromErrno("open", shown);
    }
  }
  if (::fchown(dir.get(), m.uid(), m.gid()) != 0) return Status::fromErrno("chown", shown);
  if (::fchmod(dir.get(), m.mode() & 07777) != 0) return Status::fromErrno("chmod", shown);
  return okStatus();
}

Status TreeWriter::makeSymlink(const std::string& rel, const v1::FileMeta& m) {
  const std::string shown = root_ + "/" + rel;
  if (m.link_target().empty() || m.link_target().size() > kMaxPath || m.link_target().find('\0') != std::string::npos)
    return invalidArgument("bad link target for `" + rel + "`");
  std::string leaf;
  LXMIG_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(rel, &leaf));
  const std::string tmp = tempName(leaf);
  if (::symlinkat(m.link_target().c_str(), parent.get(), tmp.c_str()) != 0) return Status::fromErrno("symlink", shown);
  if (::fchownat(parent.get(), tmp.c_str(), m.uid(), m.gid(), AT_SYMLINK_NOFOLLOW) != 0) {
    Status st = Status::fromErrno("lchown", shown);
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    return st;
  }
  return replace(parent.get(), tmp, leaf, shown);
}

Status TreeWriter::makeFifo(const std::string& rel, const v1::FileMeta& m) {
  const std::string shown = root_ + "/" + rel;
  std::string leaf;
  LXMIG_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(rel, &leaf));
  const std::string tmp = tempName(leaf);
  if (::mkfifoat(parent.get(), tmp.c_str(), 0600) != 0) return Status::fromErrno("mkfifo", shown);
  Status st;
  if (::fchownat(parent.get(), tmp.c_str(), m.uid(), m.gid(), AT_SYMLINK_NOFOLLOW) != 0)
    st = Status::fromErrno("chown", shown);
  // A FIFO has no O_PATH-free chmod that cannot follow a link; the name is
  // ours (a fresh temporary in a directory opened without following).
  if (st.ok() && ::fchmodat(parent.get(), tmp.c_str(), m.mode() & 07777, 0) != 0)
    st = Status::fromErrno("chmod", shown);
  if (!st.ok()) {
    ::unlinkat(parent.get(), tmp.c_str(), 0);
    return st;
  }
  return replace(parent.get(), tmp, leaf, shown);
}

Status TreeWriter::makeHardLink(const std::string& rel, const v1::FileMeta& m) {
  const std::string shown = root_ + "/" + rel, target = m.link_target();
  if (Status st = checkRelativePath(target); !st.ok() || target == ".")
    return invalidArgument("bad hard link target for `" + rel + "`");
  std::string leaf, targetLeaf;
  LXMIG_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(rel, &leaf));
  LXMIG_ASSIGN_OR_RETURN(UniqueFd targetDir, parentOf(target, &targetLeaf));
  struct stat there {};
  struct stat here {};
  if (::fstatat(targetDir.get(), targetLeaf.c_str(), &there, AT_SYMLINK_NOFOLLOW) != 0)
    return Status::fromErrno("stat the file linked as `" + rel + "`", root_ + "/" + target);
  if (!S_ISREG(there.st_mode))
    return invalidArgument("`" + rel + "` is sent as another name of `" + target + "`, which is not a regular file");
  if (::fstatat(parent.get(), leaf.c_str(), &here, AT_SYMLINK_NOFOLLOW) == 0 && here.st_dev == there.st_dev &&
      here.st_ino == there.st_ino)
    return okStatus();  // linked already
  // Without AT_SYMLINK_FOLLOW: whatever is there by now is linked, never what it points to.
  const std::string tmp = tempName(leaf);
  if (::linkat(targetDir.get(), targetLeaf.c_str(), parent.get(), tmp.c_str(), 0) != 0)
    return Status::fromErrno("link `" + target + "` as", shown);
  return replace(parent.get(), tmp, leaf, shown);
}

Status TreeWriter::beginFile(const std::string& rel, const v1::FileMeta& m) {
  const std::string shown = root_ + "/" + rel;
  if (budget_ && m.size() > budget_->total())
    return resourceExhausted("`" + rel + "` is larger than the " + humanBytes(budget_->total()) +
                             " announced for this migration");
  std::string leaf;
  LXMIG_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(rel, &leaf));
  // A file already here (an earlier piece of it, or its copy from the pass
  // before the freeze) is written in place; anything else is replaced.
  UniqueFd fd(::openat(parent.get(), leaf.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  // ENOENT: new; ELOOP: a link; EISDIR: a directory; ENXIO: a FIFO or socket.
  if (!fd && errno != ENOENT && errno != ELOOP && errno != EISDIR && errno != ENXIO)
    return Status::fromErrno("open", shown);
  struct stat st {};
  if (fd && (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))) fd.reset();
  if (!fd) {
    struct stat there {};
    const bool occupied = ::fstatat(parent.get(), leaf.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0;
    curTmp_ = occupied ? tempName(leaf) : "";
    const std::string create = occupied ? curTmp_ : leaf;
    fd = UniqueFd(::openat(parent.get(), create.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Status::fromErrno("create", shown);
  } else {
    curTmp_.clear();
  }
  fileDir_ = std::move(parent);
  file_ = std::move(fd);
  curPath_ = rel;
  curLeaf_ = leaf;
  curMeta_ = m;
  ++files_;
  return okStatus();
}

Status TreeWriter::remove(const std::string& rel) {
  std::string leaf;
  auto parent = parentOf(rel, &leaf);
  // A parent that is gone or no longer a directory holds nothing to delete
  // (a directory that became a link takes its old entries with it).
  if (!parent.ok())
    return parent.status().code() == Code::kNotFound || parent.status().code() == Code::kFailedPrecondition
               ? okStatus()
               : parent.status();
  return removeTreeAt(parent->get(), leaf, root_ + "/" + rel);
}

Status TreeWriter::closeCurrent() {
  if (!file_) return okStatus();
  UniqueFd fd = std::move(file_);
  UniqueFd dir = std::move(fileDir_);
  const std::string p = root_ + "/" + curPath_;
  Status st;
  if (::ftruncate(fd.get(), static_cast<off_t>(curMeta_.size())) != 0) st = Status::fromErrno("truncate", p);
  if (st.ok() && ::fchown(fd.get(), curMeta_.uid(), curMeta_.gid()) != 0) st = Status::fromErrno("chown", p);
  if (st.ok() && ::fchmod(fd.get(), curMeta_.mode() & 07777) != 0) st = Status::fromErrno("chmod", p);
  timespec ts[2] = {
      {0, UTIME_OMIT},
      {static_cast<time_t>(curMeta_.mtime_ns() / 1000000000), static_cast<long>(curMeta_.mtime_ns() % 1000000000)}};
  if (st.ok() && ::futimens(fd.get(), ts) != 0) st = Status::fromErrno("utimens", p);
  // Only started: nothing waits for the disk here. A filesystem that
  // cannot is made durable by the later syncfs all the same.
  if (st.ok() && writeback_) (void)::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  int fdNum = fd.release();
  if (::close(fdNum) != 0 && st.ok()) st = Status::fromErrno("close", p);
  if (!curTmp_.empty()) {
    if (st.ok()) st = replace(dir.get(), curTmp_, curLeaf_, p);
    else ::unlinkat(dir.get(), curTmp_.c_str(), 0);
    curTmp_.clear();
  }
  return st;
}

Status TreeWriter::apply(const v1::TransferChunk& c) {
  LXMIG_RETURN_IF_ERROR(checkRelativePath(c.path()));
  if (c.has_meta()) {
    LXMIG_RETURN_IF_ERROR(closeCurrent());
    const auto& m = c.meta();
    switch (m.type()) {
      case v1::FileMeta::DIRECTORY:
        return makeDirectory(c.path(), m);
      case v1::FileMeta::SYMLINK:
        if (c.path() == ".") return invalidArgument("the tree's root cannot be a link");
        return makeSymlink(c.path(), m);
      case v1::FileMeta::DELETED:
        if (c.path() == ".") return invalidArgument("the tree's root cannot be deleted");
        return remove(c.path());
      case v1::FileMeta::REGULAR:
        if (c.path() == ".") return invalidArgument("the tree's root cannot be a file");
        return beginFile(c.path(), m);
      case v1::FileMeta::FIFO:
        if (c.path() == ".") return invalidArgument("the tree's root cannot be a FIFO");
        return makeFifo(c.path(), m);
      case v1::FileMeta::HARDLINK:
        if (c.path() == ".") return invalidArgument("the tree's root cannot be a hard link");
        return makeHardLink(c.path(), m);
      default:
        return invalidArgument("unknown entry type in transfer for `" + c.path() + "`");
    }
  }
  if (!file_ || c.path() != curPath_) return invalidArgument("data for `" + c.path() + "` without its header");
  const std::string& d = c.data();
  if (verifyChecksums_ && XXH3_64bits(d.data(), d.size()) != c.xxh64())
    return Status(Code::kAborted, "checksum mismatch in `" + c.path() + "` at offset " + std::to_string(c.offset()));
  if (c.offset() > kMaxFileBytes || d.size() > kMaxFileBytes - c.offset())
    return invalidArgument("data for `" + c.path() + "` beyond any file size (offset " + std::to_string(c.offset()) +
                           ")");
  if (budget_) LXMIG_RETURN_IF_ERROR(budget_->take(d.size(), "`" + c.path() + "`"));
  LXMIG_RETURN_IF_ERROR(pwriteAll(file_.get(), d.data(), d.size(), c.offset(), root_ + "/" + curPath_));
  bytes_ += d.size();
  return okStatus();
}

Status TreeWriter::finish() { return closeCurrent(); }

}  // namespace lxmig::transport
