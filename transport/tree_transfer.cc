#include "lxmig/transport/tree_transfer.h"

#include <dirent.h>
#include <algorithm>
#include <vector>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "lxmig/transport/data_link.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"

namespace lxmig::transport {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
constexpr uint64_t kPageBytes = 4096;  // the read that finds EOF

bool safeRelative(const std::string& p) {
  if (p == ".") return true;  // the tree's root itself
  if (p.empty() || p[0] == '/') return false;
  for (const auto& part : split(p, '/', false))
    if (part.empty() || part == "..") return false;
  return true;
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
    v1::TransferChunk c;
    c.set_migration_id(id);
    c.set_area(area);
    c.set_path(rel);
    c.set_offset(off);
    c.set_data(std::move(buf));
    if (!sink(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
    off += static_cast<uint64_t>(n);
    if (onBytes) onBytes(static_cast<uint64_t>(n));
  }
  return off;
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

  Status sendMeta(const std::string& rel, const struct stat& st, v1::FileMeta::Type type,
                  const std::string& link) {
    auto c = metaChunk(id, area, rel, st, type, link);
    if (!sink(c)) return unavailable("transfer stream broke while sending `" + rel + "`");
    return okStatus();
  }

  // A file from its start, or from where a TailSender left it.
  Status sendFile(const std::string& rel, const std::string& abs, const struct stat& st) {
    UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return Status::fromErrno("open", abs);
    uint64_t from = 0;
    if (resume) {
      auto it = resume->find(rel);
      if (it != resume->end()) from = it->second;
    }
    if (from > static_cast<uint64_t>(st.st_size))
      return failedPrecondition("`" + abs + "` shrank while it was being sent");
    LXMIG_RETURN_IF_ERROR(sendMeta(rel, st, v1::FileMeta::REGULAR, ""));
    return sendRange(id, area, rel, fd.get(), from, UINT64_MAX, sink, onBytes).status();
  }

  Status walk(const std::string& rel) {
    std::string abs = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(abs.c_str());
    if (!d) return Status::fromErrno("opendir", abs);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    if (rel.empty() && !first.empty())
      std::stable_partition(names.begin(), names.end(), [&](const std::string& n) {
        return std::find(first.begin(), first.end(), n) != first.end();
      });
    for (const auto& n : names) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      std::string a = root + "/" + r;
      struct stat st {};
      if (::lstat(a.c_str(), &st) != 0) {
        if (errno == ENOENT) continue;  // vanished while walking a running container
        return Status::fromErrno("stat", a);
      }
      EntryState es;
      es.size = static_cast<uint64_t>(st.st_size);
      es.mtimeNs = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
      es.mode = st.st_mode;
      if (S_ISDIR(st.st_mode)) {
        es.type = v1::FileMeta::DIRECTORY;
        es.size = 0;
        es.mtimeNs = 0;  // directory mtimes change with every file; content is walked anyway
        bool changed = !previous.count(r) || !(previous.at(r) == es);
        now[r] = es;
        if (changed) LXMIG_RETURN_IF_ERROR(sendMeta(r, st, v1::FileMeta::DIRECTORY, ""));
        if (st.st_dev == dev) LXMIG_RETURN_IF_ERROR(walk(r));
      } else if (S_ISREG(st.st_mode)) {
        es.type = v1::FileMeta::REGULAR;
        now[r] = es;
        if (!previous.count(r) || !(previous.at(r) == es)) LXMIG_RETURN_IF_ERROR(sendFile(r, a, st));
      } else if (S_ISLNK(st.st_mode)) {
        es.type = v1::FileMeta::SYMLINK;
        now[r] = es;
        if (!previous.count(r) || !(previous.at(r) == es)) {
          char target[4096];
          ssize_t len = ::readlink(a.c_str(), target, sizeof target - 1);
          if (len < 0) return Status::fromErrno("readlink", a);
          LXMIG_RETURN_IF_ERROR(sendMeta(r, st, v1::FileMeta::SYMLINK, std::string(target, static_cast<size_t>(len))));
        }
      }
      // Sockets, FIFOs and device nodes are recreated by CRIU or autodev.
    }
    return okStatus();
  }
};

}  // namespace

Result<Manifest> sendTree(const std::string& migrationId, v1::TransferChunk::Area area, const std::string& root,
                          const Manifest& previous, const ChunkSink& sink, const BytesCallback& onBytes,
                          const std::map<std::string, uint64_t>* resume, const std::vector<std::string>& first) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return Status::fromErrno("stat", root);
  Walker w{migrationId, area, root, previous, sink, onBytes, resume, first, {}, st.st_dev};
  // The root's own mode and owner first: CRIU checks the rootfs mode.
  LXMIG_RETURN_IF_ERROR(w.sendMeta(".", st, v1::FileMeta::DIRECTORY, ""));
  LXMIG_RETURN_IF_ERROR(w.walk(""));
  // Deletions, deepest first so directories are empty when removed.
  for (auto it = previous.rbegin(); it != previous.rend(); ++it) {
    if (w.now.count(it->first)) continue;
    v1::TransferChunk c;
    c.set_migration_id(migrationId);
    c.set_area(area);
    c.set_path(it->first);
    c.mutable_meta()->set_type(v1::FileMeta::DELETED);
    if (!sink(c)) return unavailable("transfer stream broke while sending deletions");
  }
  return std::move(w.now);
}

TailSender::TailSender(std::string migrationId, v1::TransferChunk::Area area, std::string root, std::string prefix)
    : id_(std::move(migrationId)), area_(area), root_(std::move(root)), prefix_(std::move(prefix)) {}

Result<uint64_t> TailSender::poll(const ChunkSink& sink, const BytesCallback& onBytes) {
  DIR* d = ::opendir(root_.c_str());
  if (!d) return uint64_t{0};  // not created yet
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (startsWith(e->d_name, prefix_)) names.emplace_back(e->d_name);
  ::closedir(d);
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
    LXMIG_ASSIGN_OR_RETURN(uint64_t reached,
                           sendRange(id_, area_, name, fd.get(), done, static_cast<uint64_t>(st.st_size), sink, onBytes));
    total += reached - done;
    done = reached;
  }
  return total;
}

uint64_t treeBytes(const std::string& root) {
  uint64_t total = 0;
  DIR* d = ::opendir(root.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string p = root + "/" + n;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) total += treeBytes(p);
    else if (S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
  }
  ::closedir(d);
  return total;
}

TreeWriter::~TreeWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status TreeWriter::closeCurrent() {
  if (fd_ < 0) return okStatus();
  int fd = std::exchange(fd_, -1);
  std::string p = root_ + "/" + curPath_;
  Status st;
  if (::ftruncate(fd, static_cast<off_t>(curMeta_.size())) != 0) st = Status::fromErrno("truncate", p);
  if (st.ok() && ::fchown(fd, curMeta_.uid(), curMeta_.gid()) != 0) st = Status::fromErrno("chown", p);
  if (st.ok() && ::fchmod(fd, curMeta_.mode()) != 0) st = Status::fromErrno("chmod", p);
  timespec ts[2] = {{0, UTIME_OMIT},
                    {static_cast<time_t>(curMeta_.mtime_ns() / 1000000000), static_cast<long>(curMeta_.mtime_ns() % 1000000000)}};
  if (st.ok() && ::futimens(fd, ts) != 0) st = Status::fromErrno("utimens", p);
  if (::close(fd) != 0 && st.ok()) st = Status::fromErrno("close", p);
  return st;
}

Status TreeWriter::apply(const v1::TransferChunk& c) {
  if (!safeRelative(c.path())) return invalidArgument("unsafe path in transfer: `" + c.path() + "`");
  std::string p = root_ + "/" + c.path();
  if (c.has_meta()) {
    LXMIG_RETURN_IF_ERROR(closeCurrent());
    const auto& m = c.meta();
    switch (m.type()) {
      case v1::FileMeta::DIRECTORY:
        if (::mkdir(p.c_str(), m.mode()) != 0 && errno != EEXIST) return Status::fromErrno("mkdir", p);
        if (::chown(p.c_str(), m.uid(), m.gid()) != 0) return Status::fromErrno("chown", p);
        if (::chmod(p.c_str(), m.mode()) != 0) return Status::fromErrno("chmod", p);
        return okStatus();
      case v1::FileMeta::SYMLINK:
        ::unlink(p.c_str());
        if (::symlink(m.link_target().c_str(), p.c_str()) != 0) return Status::fromErrno("symlink", p);
        if (::lchown(p.c_str(), m.uid(), m.gid()) != 0) return Status::fromErrno("lchown", p);
        return okStatus();
      case v1::FileMeta::DELETED:
        return removeTree(p);
      case v1::FileMeta::REGULAR: {
        struct stat st {};
        if (::lstat(p.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) LXMIG_RETURN_IF_ERROR(removeTree(p));
        fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd_ < 0) return Status::fromErrno("create", p);
        curPath_ = c.path();
        curMeta_ = m;
        ++files_;
        return okStatus();
      }
      default:
        return invalidArgument("unknown entry type in transfer for `" + c.path() + "`");
    }
  }
  if (fd_ < 0 || c.path() != curPath_) return invalidArgument("data for `" + c.path() + "` without its header");
  const std::string& d = c.data();
  if (verifyChecksums_ && XXH3_64bits(d.data(), d.size()) != c.xxh64())
    return Status(Code::kAborted, "checksum mismatch in `" + c.path() + "` at offset " + std::to_string(c.offset()));
  LXMIG_RETURN_IF_ERROR(pwriteAll(fd_, d.data(), d.size(), c.offset(), p));
  bytes_ += d.size();
  return okStatus();
}

Status TreeWriter::finish() { return closeCurrent(); }

}  // namespace lxmig::transport
