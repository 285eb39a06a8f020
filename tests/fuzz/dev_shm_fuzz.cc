// A container's mount table (container/dev_shm.h devShmMountProblem): the
// kernel writes it, the container chooses its mount points and options.
// The verdict is one bounded line; "" only when the last line for /dev/shm
// is lxmig's standard tmpfs.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/container/dev_shm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string text(reinterpret_cast<const char*>(in), size);
  const std::string why = lxmig::container::devShmMountProblem(text);
  LXMIG_FUZZ_CHECK(why.find('\n') == std::string::npos && why.size() <= 400);
  if (why.empty()) {
    LXMIG_FUZZ_CHECK(text.find(" /dev/shm rw,nosuid,nodev,relatime ") != std::string::npos);
    LXMIG_FUZZ_CHECK(text.find(" - tmpfs ") != std::string::npos);
  }
  return 0;
}
