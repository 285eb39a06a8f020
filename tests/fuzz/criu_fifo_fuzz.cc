// CRIU FIFO images (criu::fifoPaths, criu::dropFifoData), which a target
// reads from what a source sent: the input is tried as files.img and as
// fifo-data.img. What parses never names a path for a pipe it did not see,
// dropping nothing gives the input back, and dropping keeps a well-formed
// image that is no longer and parses again with nothing left to drop.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string_view>

#include "fuzz_check.h"
#include "lxmig/criu/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto paths = lxmig::criu::fifoPaths(bytes);
  if (!paths.ok()) LXMIG_FUZZ_CHECK(!paths.status().message().empty());

  size_t dropped = 99;
  auto same = lxmig::criu::dropFifoData(bytes, {}, &dropped);
  if (!same.ok()) {
    LXMIG_FUZZ_CHECK(!same.status().message().empty());
    return 0;
  }
  LXMIG_FUZZ_CHECK(dropped == 0);
  LXMIG_FUZZ_CHECK(*same == bytes);
  // Drop the pipe ids named by the input's bytes (a few of them).
  std::set<uint32_t> drop;
  for (size_t i = 8; i + 4 <= size && drop.size() < 8; i += 7) {
    uint32_t v = 0;
    std::memcpy(&v, data + i, 4);
    drop.insert(v % 1024);
  }
  auto out = lxmig::criu::dropFifoData(bytes, drop, &dropped);
  LXMIG_FUZZ_CHECK(out.ok());
  LXMIG_FUZZ_CHECK(out->size() <= size);
  size_t again = 99;
  auto twice = lxmig::criu::dropFifoData(*out, drop, &again);
  LXMIG_FUZZ_CHECK(twice.ok() && again == 0 && *twice == *out);
  return 0;
}
