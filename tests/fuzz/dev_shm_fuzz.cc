// A container's mount table (container/dev_shm.h devShmMountProblem,
// dev_tree.h devMountProblem): the kernel writes it, the container chooses
// its mount points and options. Each verdict is one bounded line; "" only
// when the last line for /dev/shm is lxmig's standard tmpfs, and for /dev
// liblxc's autodev mount.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/container/dev_shm.h"
#include "lxmig/container/dev_tree.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string text(reinterpret_cast<const char*>(in), size);
  const std::string why = lxmig::container::devShmMountProblem(text);
  LXMIG_FUZZ_CHECK(why.find('\n') == std::string::npos && why.size() <= 400);
  if (why.empty()) {
    LXMIG_FUZZ_CHECK(text.find(" /dev/shm rw,nosuid,nodev,relatime ") != std::string::npos);
    LXMIG_FUZZ_CHECK(text.find(" - tmpfs tmpfs rw") != std::string::npos);
  }
  const std::string dev = lxmig::container::devMountProblem(text);
  LXMIG_FUZZ_CHECK(dev.find('\n') == std::string::npos && dev.size() <= 400);
  if (dev.empty()) {
    LXMIG_FUZZ_CHECK(text.find(" /dev rw,relatime ") != std::string::npos);
    LXMIG_FUZZ_CHECK(text.find(" - tmpfs none rw,size=492k,mode=755") != std::string::npos);
    LXMIG_FUZZ_CHECK(text.find(" /dev/pts ") != std::string::npos);
  }
  const std::string id = text.substr(0, 36);
  if (lxmig::container::isBootId(id)) LXMIG_FUZZ_CHECK(id.find_first_of("/. \n") == std::string::npos);
  return 0;
}
