// Streams a directory tree over the migration's Transfer RPC and rebuilds it
// on the other side. The sender keeps a manifest so a second pass after the
// freeze sends only what changed (and what was deleted).
#pragma once

#include <sys/types.h>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::transport {

// A regular file is remembered block by block: a later pass over a file
// whose size or time changed reads it again and sends only the blocks
// whose hash changed (a database rewrites a few pages of a large file).
constexpr uint64_t kTreeBlockBytes = 32 << 10;

struct EntryState {
  int type = 0;  // v1::FileMeta::Type
  uint64_t size = 0;
  int64_t mtimeNs = 0;
  uint32_t mode = 0;
  ino_t ino = 0;  // regular files
  // XXH3 of each kTreeBlockBytes block as sent (regular files).
  std::vector<uint64_t> blocks;
  // A second name of a regular file (HARDLINK): the name it was sent as.
  std::string linkTo;
  bool sameMeta(const EntryState& o) const {
    return type == o.type && size == o.size && mtimeNs == o.mtimeNs && mode == o.mode && ino == o.ino &&
           linkTo == o.linkTo;
  }
};
using Manifest = std::map<std::string, EntryState>;

// Called for every chunk; returns false when the stream broke.
using ChunkSink = std::function<bool(v1::TransferChunk&)>;
using BytesCallback = std::function<void(uint64_t)>;

// Sends every entry of `root` that differs from `previous` (all of them when
// it is empty) plus deletions, and returns the new manifest. Of a regular
// file `previous` holds, only the blocks that changed travel (the receiver
// writes in place). A regular file with several names in the tree is sent
// once, under the first name the walk meets; its other names follow as
// HARDLINK entries naming that one (the receiver links them). Sockets and
// device nodes are skipped, and so are other filesystems mounted inside.
// The tree may belong to a running container: it is walked through
// directory fds, never following a link (a link is sent as a link), and an
// entry that changes type while it is read is left to the next pass.
// Unavailable when the sink fails. Files named in `resume` continue from
// that offset (a TailSender sent the rest). Entries of the root whose names
// begin with one of `first` go before the others (both in name order).
Result<Manifest> sendTree(const std::string& migrationId, v1::TransferChunk::Area area, const std::string& root,
                          const Manifest& previous, const ChunkSink& sink, const BytesCallback& onBytes,
                          const std::map<std::string, uint64_t>* resume = nullptr,
                          const std::vector<std::string>& first = {});
// The same for a tree the caller opened (a container's /dev/shm, reached
// through its init's root); `shown` names it in errors. rootFd stays the
// caller's.
Result<Manifest> sendTreeAt(const std::string& migrationId, v1::TransferChunk::Area area, int rootFd,
                            const std::string& shown, const Manifest& previous, const ChunkSink& sink,
                            const BytesCallback& onBytes, const std::map<std::string, uint64_t>* resume = nullptr,
                            const std::vector<std::string>& first = {});

// Follows files that only grow while another process writes them (CRIU's
// pages-*.img during a dump) and sends what was appended since the last
// poll, so the bulk of the images travels while CRIU is still dumping.
// The receiving TreeWriter needs nothing special: each poll sends a header
// and then data at the file's offsets.
class TailSender {
 public:
  TailSender(std::string migrationId, v1::TransferChunk::Area area, std::string root, std::string prefix);
  // Sends the new bytes of every file under root whose name starts with
  // prefix (and that `follow` names, when given); returns how many.
  // FailedPrecondition when a followed file shrank or was replaced,
  // Unavailable when the sink fails.
  Result<uint64_t> poll(const ChunkSink& sink, const BytesCallback& onBytes,
                        const std::function<bool(const std::string&)>& follow = {});
  // Bytes sent per file, for sendTree's `resume`.
  const std::map<std::string, uint64_t>& sent() const { return sent_; }

 private:
  std::string id_;
  v1::TransferChunk::Area area_;
  std::string root_, prefix_;
  std::map<std::string, ino_t> inodes_;  // a followed file must stay the same file
  std::map<std::string, uint64_t> sent_;
};

// Sum of regular file sizes below root (same walk as sendTree's; a file
// of several names counts once).
uint64_t treeBytes(const std::string& root);

// How many bytes a migration may still write on this node: what the source
// announced at PREPARE, with some slack. Shared by every TreeWriter of the
// migration (thread-safe).
class ByteBudget {
 public:
  explicit ByteBudget(uint64_t bytes) : total_(bytes), left_(bytes) {}
  // ResourceExhausted once more than the budget would be written.
  Status take(uint64_t n, const std::string& what);
  // More room (the migration reserved more on the way).
  void grow(uint64_t n) {
    total_ += n;
    left_ += n;
  }
  uint64_t total() const { return total_; }

 private:
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> left_;
};

// Applies received chunks under a root directory; one instance per stream.
// The peer is not trusted: every path is checked (checkRelativePath) and
// opened beneath the root without following any link (openDirBeneath), so
// nothing it sends reaches outside the root, whatever the tree already
// holds; an entry whose type changed is replaced atomically (built under a
// temporary name, then exchanged). verifyChecksums: data chunks must match
// their XXH3 (the Transfer RPC); a data link's frames are authenticated by
// their AEAD tag instead. `budget` (optional) bounds the bytes written.
class TreeWriter {
 public:
  // With `writeback`, each file finished starts its way to disk at once
  // (sync_file_range): the syncfs that makes the tree durable later finds
  // little left, and does not hold up the writes of a container that runs
  // on the tree meanwhile.
  explicit TreeWriter(std::string root, bool verifyChecksums = true, ByteBudget* budget = nullptr,
                      bool writeback = false)
      : root_(std::move(root)), verifyChecksums_(verifyChecksums), budget_(budget), writeback_(writeback) {}
  ~TreeWriter();
  Status apply(const v1::TransferChunk& c);
  // Finishes the file in progress (size, mode, owner, times).
  Status finish();
  uint64_t bytes() const { return bytes_; }
  uint32_t files() const { return files_; }

 private:
  // The directory holding `rel` (O_PATH), and rel's last component.
  Result<UniqueFd> parentOf(const std::string& rel, std::string* leaf);
  Status makeDirectory(const std::string& rel, const v1::FileMeta& m);
  Status makeSymlink(const std::string& rel, const v1::FileMeta& m);
  Status makeFifo(const std::string& rel, const v1::FileMeta& m);
  Status makeHardLink(const std::string& rel, const v1::FileMeta& m);
  Status beginFile(const std::string& rel, const v1::FileMeta& m);
  Status remove(const std::string& rel);
  Status closeCurrent();
  // Puts the entry `tmp` in the place of `leaf` in one step; what was at
  // `leaf` (of another type) goes.
  Status replace(int parent, const std::string& tmp, const std::string& leaf, const std::string& shown);
  std::string root_;
  bool verifyChecksums_;
  ByteBudget* budget_;
  bool writeback_;
  UniqueFd rootFd_;
  // The file being written: its directory, its name, and the temporary name
  // it is written under when it replaces an entry of another type.
  UniqueFd fileDir_, file_;
  std::string curPath_, curLeaf_, curTmp_;
  v1::FileMeta curMeta_;
  uint64_t bytes_ = 0;
  uint32_t files_ = 0;
};

}  // namespace lxmig::transport
