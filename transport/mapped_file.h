// A regular file read straight from the page cache through a read-only
// mapping, for hashing its blocks without copying them into a buffer (a
// database's heap file of a gigabyte, read again after each pass).
//
// A mapped file can fault where a read() would only fail: a file cut
// shorter under the mapping (a running container may truncate its files
// while a pass reads them) or a device error raises SIGBUS. The reads here
// catch it for the calling thread and report false; the caller then reads
// the file the plain way, which sees the short file or the error.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace lxmig::transport {

// XXH3 of each `block`-byte block of [data, data + len) (the last one may
// be shorter) into out[0..].
void hashBlocks(const char* data, size_t len, size_t block, uint64_t* out);

class MappedWindow {
 public:
  // [offset, offset + length) of `fd`, offset a multiple of the page size.
  // Empty (ok() false) when the file cannot be mapped (a filesystem without
  // mmap, no address space left).
  MappedWindow(int fd, uint64_t offset, size_t length);
  ~MappedWindow();
  MappedWindow(const MappedWindow&) = delete;
  MappedWindow& operator=(const MappedWindow&) = delete;

  bool ok() const { return data_ != nullptr; }
  size_t size() const { return length_; }

  // XXH3 of each `block`-byte block of the window (the last one may be
  // shorter) into out[0..]. False when the file faulted meanwhile.
  bool hashBlocks(size_t block, uint64_t* out) const;
  // Copies [from, from + n) of the window into dst. False when the file
  // faulted meanwhile.
  bool copy(size_t from, size_t n, char* dst) const;

 private:
  const char* data_ = nullptr;
  size_t length_ = 0;
};

}  // namespace lxmig::transport
