// A checkpoint file (lxmig checkpoint --export / restore --import): the
// magic "LXMIGCK1", then records, each a 4-byte little-endian length and a
// v1::CheckpointRecord; the last one, `end`, holds how many records and
// bytes came before it and their XXH3-64. The file is the operator's and
// may come from anywhere: the reader bounds every length, and a file whose
// end does not match is refused before its end goes to the agent (which
// restores nothing without it).
//
//   CheckpointWriter w(fd);  w.add(record) ...;  w.end(node, takenMs);
//   CheckpointReader r(fd);  while (auto rec = r.next()) ...   // end checked
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <memory>
#include <string>

#include "lxmig/base/status.h"
#include "lxmig/v1/agent.pb.h"

namespace lxmig::cli {

inline constexpr char kCheckpointMagic[] = "LXMIGCK1";
inline constexpr size_t kCheckpointMagicBytes = 8;
// A record is at most this long (a chunk's data is far below).
inline constexpr uint32_t kMaxCheckpointRecordBytes = 32 << 20;

// Where the file's bytes go or come from: write(2)/read(2) on an fd, or a
// buffer in the fuzz target.
using WriteFn = std::function<Status(const char* data, size_t n)>;
// Reads up to n bytes; returns how many (0 at the end).
using ReadFn = std::function<Result<size_t>(char* data, size_t n)>;

class CheckpointWriter {
 public:
  // Writes the magic.
  static Result<CheckpointWriter> start(WriteFn out);
  Status add(const v1::CheckpointRecord& r);
  // The end record, over everything added.
  Status end(const std::string& node, int64_t takenMs);
  uint64_t bytes() const { return bytes_; }

 private:
  explicit CheckpointWriter(WriteFn out);
  Status put(const v1::CheckpointRecord& r, bool hashed);
  WriteFn out_;
  std::shared_ptr<XXH3_state_t> hash_;
  uint64_t records_ = 0, bytes_ = 0;
};

class CheckpointReader {
 public:
  // Checks the magic.
  static Result<CheckpointReader> start(ReadFn in);
  // The next record; false after the end record (which it returns first,
  // once its counts and XXH3 match what came before). InvalidArgument for
  // a damaged or cut file, naming the offset.
  Result<bool> next(v1::CheckpointRecord* r);
  uint64_t bytes() const { return bytes_; }

 private:
  explicit CheckpointReader(ReadFn in);
  Result<bool> readFully(char* data, size_t n);
  ReadFn in_;
  std::shared_ptr<XXH3_state_t> hash_;
  uint64_t records_ = 0, bytes_ = 0;
  bool ended_ = false;
};

}  // namespace lxmig::cli
