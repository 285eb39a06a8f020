// The CLI's value parsers (cli/args.h): a duration is a whole number of
// milliseconds within a day; a look back (--since, --cooldown) a
// whole number of minutes within ten years, its text ending in m, h, d or
// w; a bind has absolute-looking paths only when it is accepted; errors
// are one line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "args.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string s(reinterpret_cast<const char*>(in), size);
  auto d = lxmig::cli::parseDurationMs(s);
  if (d.ok()) LXMIG_FUZZ_CHECK(*d >= 0 && *d <= 86400000);
  else LXMIG_FUZZ_CHECK(d.status().message().find('\n') == std::string::npos);
  auto since = lxmig::cli::parseSinceMs(s);
  if (since.ok())
    LXMIG_FUZZ_CHECK(*since >= 0 && *since <= int64_t{3650} * 86400 * 1000 && *since % 60000 == 0 &&
                     std::string("mhdw").find(s.back()) != std::string::npos);
  else LXMIG_FUZZ_CHECK(since.status().message().find('\n') == std::string::npos);
  auto b = lxmig::cli::parseBind(s);
  if (b.ok()) LXMIG_FUZZ_CHECK(!b->host_path().empty() && !b->container_path().empty());
  return 0;
}
