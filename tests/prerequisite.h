// What a test needs of the machine (root, a kernel feature, a tool), said
// once at its start: missing, the test fails under CI=true and is reported
// SKIPPED, loudly, elsewhere; it never returns early and passes.
//
//   TEST(Tracker, ...) {
//     LXMIG_REQUIRE(::geteuid() == 0, "root");
//     ...
//   }
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace lxmig::testing {

inline bool inCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

}  // namespace lxmig::testing

// A statement, usable in a TEST body or a fixture's SetUp.
#define LXMIG_REQUIRE(cond, what)                                                        \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      if (::lxmig::testing::inCi()) FAIL() << "prerequisite missing under CI: " << what; \
      GTEST_SKIP() << "SKIPPED (prerequisite missing): " << what;                        \
    }                                                                                    \
  } while (0)
