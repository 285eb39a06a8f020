// container/criu_dump.h on any /proc/INIT/cgroup text and LXC config (the
// input is the cgroup text, a NUL byte, then the config): the container's
// sub-cgroups name the paths of that text, so its lines are untrusted.
// What builds is CRIU's command line in its fixed shape: one
// `--cgroup-root CONTROLLERS:PAYLOAD` per line within the payload, with
// CONTROLLERS the line's own and nothing of the path after the payload;
// one `--ext-mount-map /PATH:PATH` per bind entry; no argument holds a
// newline. A refusal is one line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "criu_dump.h"
#include "fuzz_check.h"

namespace {

constexpr std::string_view kPayload = "/lxmig/payload.c1";

bool within(std::string_view path) {
  return path == kPayload ||
         (path.size() > kPayload.size() && path.substr(0, kPayload.size()) == kPayload && path[kPayload.size()] == '/');
}

// The lines of /proc/INIT/cgroup whose path is within the payload, as the
// kernel writes them ("ID:CONTROLLERS:PATH"); -1 when a line has fewer
// than two colons (the builder refuses it).
int rootsExpected(std::string_view text) {
  int n = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    const size_t a = line.find(':');
    const size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) return -1;
    if (within(line.substr(b + 1))) ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(in), size);
  const size_t cut = all.find('\0');
  lxmig::container::CriuDumpPlan plan;
  plan.imagesDir = "/run/lxmig/images/m1";
  plan.init = 4242;
  plan.initCgroups = std::string(all.substr(0, cut));
  plan.payload = std::string(kPayload);
  plan.unified = size % 2 == 1;
  if (cut != std::string_view::npos) plan.config = std::string(all.substr(cut + 1));

  auto args = lxmig::container::criuDumpArgs(plan);
  if (!args.ok()) {
    LXMIG_FUZZ_CHECK(args.status().message().find('\n') == std::string::npos);
    return 0;
  }
  const std::vector<std::string>& v = *args;
  LXMIG_FUZZ_CHECK(v.size() >= 24 && v[0] == "dump");
  LXMIG_FUZZ_CHECK(v[v.size() - 7] == "-t" && v[v.size() - 6] == "4242" && v.back() == "--leave-running");
  LXMIG_FUZZ_CHECK(v[v.size() - 3] ==
                   std::string("/sys/fs/cgroup") + (plan.unified ? "" : "/freezer") + std::string(kPayload));
  int roots = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    LXMIG_FUZZ_CHECK(v[i].find('\n') == std::string::npos && !v[i].empty());
    if (v[i] == "--cgroup-root") {
      LXMIG_FUZZ_CHECK(i + 1 < v.size());
      const std::string& r = v[++i];
      const size_t colon = r.find(':');
      LXMIG_FUZZ_CHECK(colon != std::string::npos && r.substr(colon + 1) == kPayload);
      for (char c : r.substr(0, colon))
        LXMIG_FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '=' || c == ',');
      ++roots;
    } else if (v[i] == "--ext-mount-map") {
      LXMIG_FUZZ_CHECK(i + 1 < v.size());
      const std::string& m = v[++i];
      if (m == "auto") continue;
      const size_t colon = m.find(':');
      LXMIG_FUZZ_CHECK(colon != std::string::npos && m.find(':', colon + 1) == std::string::npos);
      LXMIG_FUZZ_CHECK(m[0] == '/' && m.substr(1, colon - 1) == m.substr(colon + 1) && colon > 1);
    }
  }
  LXMIG_FUZZ_CHECK(roots >= 1 && roots == rootsExpected(plan.initCgroups));
  return 0;
}
