// container/proc_limits.h on any bytes (it runs inside CRIU, preloaded, on
// /proc/PID/limits): what parses is rewritten as a limits row and parses
// back to the same values, under every resource; a resource out of range
// never parses.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "proc_limits.h"

using lxmig::container::kProcLimitsRows;
using lxmig::container::parseProcLimitsRow;
using lxmig::container::ProcLimit;

namespace {

std::string value(uint64_t v) { return v == ~uint64_t{0} ? "unlimited" : std::to_string(v); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(in), size);
  ProcLimit l;
  LXMIG_FUZZ_CHECK(!parseProcLimitsRow(text, -1, &l) && !parseProcLimitsRow(text, kProcLimitsRows, &l));
  for (int r = 0; r < kProcLimitsRows; ++r) {
    if (!parseProcLimitsRow(text, r, &l)) continue;
    std::string rebuilt = "Limit\n";
    for (int i = 0; i < r; ++i) rebuilt += "Max other\n";
    std::string row = "Max resource";
    row.resize(26, ' ');
    rebuilt += row + value(l.soft) + " " + value(l.hard) + " units\n";
    ProcLimit back;
    LXMIG_FUZZ_CHECK(parseProcLimitsRow(rebuilt, r, &back) && back.soft == l.soft && back.hard == l.hard);
  }
  return 0;
}
