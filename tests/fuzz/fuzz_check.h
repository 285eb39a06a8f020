// Invariant checks for the fuzz targets. A target checks what its parser
// promises (round trips, bounds of what it returns), not only that it does
// not crash: a failed check prints the condition and aborts, which libFuzzer
// reports as a crash and keeps the input (crash-<sha1>).
//
//   LXMIG_FUZZ_CHECK(back.ok() && back->entries == pm.entries);
#pragma once

#include <cstdio>
#include <cstdlib>

#define LXMIG_FUZZ_CHECK(cond)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
