// Streams a directory tree over the migration's Transfer RPC and rebuilds it
// on the other side. The sender keeps a manifest so a second pass after the
// freeze sends only what changed (and what was deleted).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "lxmig/base/status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::agent {

struct EntryState {
  int type = 0;  // v1::FileMeta::Type
  uint64_t size = 0;
  int64_t mtimeNs = 0;
  uint32_t mode = 0;
  bool operator==(const EntryState&) const = default;
};
using Manifest = std::map<std::string, EntryState>;

// Called for every chunk; returns false when the stream broke.
using ChunkSink = std::function<bool(v1::TransferChunk&)>;
using BytesCallback = std::function<void(uint64_t)>;

// Sends every entry of `root` that differs from `previous` (all of them when
// it is empty) plus deletions, and returns the new manifest. Sockets and
// device nodes are skipped. Unavailable when the sink fails.
Result<Manifest> sendTree(const std::string& migrationId, v1::TransferChunk::Area area,
                          const std::string& root, const Manifest& previous, const ChunkSink& sink,
                          const BytesCallback& onBytes);

// Sum of regular file sizes below root.
uint64_t treeBytes(const std::string& root);

// Applies received chunks under a root directory; one instance per stream.
class TreeWriter {
 public:
  explicit TreeWriter(std::string root) : root_(std::move(root)) {}
  ~TreeWriter();
  Status apply(const v1::TransferChunk& c);
  // Finishes the file in progress (mode, owner, times).
  Status finish();
  uint64_t bytes() const { return bytes_; }
  uint32_t files() const { return files_; }

 private:
  Status closeCurrent();
  std::string root_;
  int fd_ = -1;
  std::string curPath_;
  v1::FileMeta curMeta_;
  uint64_t bytes_ = 0;
  uint32_t files_ = 0;
};

}  // namespace lxmig::agent
