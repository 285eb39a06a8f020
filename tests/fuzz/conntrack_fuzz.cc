// Conntrack records as they travel in NetState (net::decodeConntrack): what
// decodes re-encodes to the same bytes and decodes back equal; the entry
// count is what the length says; describe() works on any entry.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "lxmig/net/conntrack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  auto entries = lxmig::net::decodeConntrack(wire);
  if (!entries.ok()) {
    LXMIG_FUZZ_CHECK(!wire.empty());  // no records at all is a valid empty set
    return 0;
  }
  if (wire.empty()) {
    LXMIG_FUZZ_CHECK(entries->empty());
    return 0;
  }
  // A version byte and whole records: the encoding is canonical.
  const std::string again = lxmig::net::encodeConntrack(*entries);
  LXMIG_FUZZ_CHECK(again == wire);
  static const size_t kRecord = lxmig::net::encodeConntrack({lxmig::net::ConntrackEntry{}}).size() - 1;
  LXMIG_FUZZ_CHECK(wire.size() == 1 + entries->size() * kRecord);
  auto back = lxmig::net::decodeConntrack(again);
  LXMIG_FUZZ_CHECK(back.ok() && *back == *entries);
  for (const auto& e : *entries) {
    const std::string text = lxmig::net::describe(e);
    LXMIG_FUZZ_CHECK(!text.empty() && text.find('\n') == std::string::npos);
  }
  return 0;
}
