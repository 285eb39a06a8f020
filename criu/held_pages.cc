#include "lxmig/criu/held_pages.h"

#include <cstring>
#include <vector>

namespace lxmig::criu {
namespace {

constexpr uint64_t kPage = tracking::kPageSize;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

}  // namespace

std::string serializeHeldPages(const std::map<uint32_t, tracking::PageSet>& held,
                               const std::vector<uint64_t>& rebuiltShmids) {
  std::string body;
  uint32_t procs = 0;
  for (const auto& [pid, pages] : held) {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [s, e] : pages.raw()) {
      const uint64_t a = (s + kPage - 1) & ~(kPage - 1), b = e & ~(kPage - 1);
      if (a < b) ranges.emplace_back(a, b);
    }
    if (ranges.empty()) continue;
    put<uint32_t>(body, pid);
    put<uint32_t>(body, 0);
    put<uint64_t>(body, ranges.size());
    for (const auto& [a, b] : ranges) {
      put<uint64_t>(body, a);
      put<uint64_t>(body, b);
    }
    ++procs;
  }
  for (uint64_t shmid : rebuiltShmids) put<uint64_t>(body, shmid);
  std::string out = "LXMIGHL2";
  put<uint32_t>(out, procs);
  put<uint32_t>(out, static_cast<uint32_t>(rebuiltShmids.size()));
  return out + body;
}

}  // namespace lxmig::criu
