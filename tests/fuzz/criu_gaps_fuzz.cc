// The lxmig-gaps file a peer sends with the images (container/criu_gaps.h):
// what parses is within the bounds and formats back to text that parses
// to the same; a refusal is one line naming the line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/container/criu_gaps.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string text(reinterpret_cast<const char*>(in), size);
  auto gaps = lxmig::container::parseCriuGaps(text);
  if (!gaps.ok()) {
    LXMIG_FUZZ_CHECK(gaps.status().message().find('\n') == std::string::npos);
    LXMIG_FUZZ_CHECK(gaps.status().message().find("lxmig-gaps line") != std::string::npos);
    return 0;
  }
  for (const auto& [tid, ns] : gaps->timerSlackNs) LXMIG_FUZZ_CHECK(tid >= 1 && tid <= 4194304 && ns >= 1);
  for (int32_t id : gaps->removedShm) LXMIG_FUZZ_CHECK(id >= 0);
  auto back = lxmig::container::parseCriuGaps(lxmig::container::formatCriuGaps(*gaps));
  LXMIG_FUZZ_CHECK(back.ok() && *back == *gaps);
  return 0;
}
