// The /proc/PID/smaps scan that finds regions locked on fault and not
// wholly resident (container/unmovable.h, refused before a migration):
// every region found is one whose header and Size/Rss lines are in the
// text, non-empty, Rss below Size, in address order as the text gives them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/container/unmovable.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string text(reinterpret_cast<const char*>(in), size);
  const auto gaps = lxmig::container::lockOnFaultGaps(text);
  LXMIG_FUZZ_CHECK(gaps.size() <= text.size() / 16);  // a header, Size, Rss and VmFlags each
  for (const auto& g : gaps) {
    LXMIG_FUZZ_CHECK(g.start < g.end);
    LXMIG_FUZZ_CHECK(g.rssKb < g.sizeKb);
  }
  LXMIG_FUZZ_CHECK(text.find("lf") != std::string::npos || gaps.empty());
  return 0;
}
