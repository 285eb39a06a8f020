// The migration vocabulary (lxmig/proto/vocabulary.h): a word parses only
// to a declared value whose name is that word; a word that does not parse
// leaves the output alone; name() of any number is a declared value's name
// or "unknown", and parses back to that number.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "fuzz_check.h"
#include "lxmig/proto/vocabulary.h"

namespace {

template <typename E>
void checkEnum(std::string_view word, int number, bool (*isValid)(int)) {
  constexpr E kSentinel = static_cast<E>(-12345);
  E v = kSentinel;
  if (lxmig::parse(word, &v)) {
    LXMIG_FUZZ_CHECK(isValid(v));
    LXMIG_FUZZ_CHECK(lxmig::name(v) == word);
  } else {
    LXMIG_FUZZ_CHECK(v == kSentinel);
  }
  const E e = static_cast<E>(number);
  const std::string_view n = lxmig::name(e);
  LXMIG_FUZZ_CHECK(!n.empty());
  LXMIG_FUZZ_CHECK((n == "unknown") != isValid(number));
  if (isValid(number)) {
    E back = kSentinel;
    LXMIG_FUZZ_CHECK(lxmig::parse(n, &back) && back == e);
    // Names are lower case with '-' for '_'.
    LXMIG_FUZZ_CHECK(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string_view::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view word(reinterpret_cast<const char*>(data), size);
  // The first four bytes also serve as a number for name().
  int number = 0;
  if (size > 0) std::memcpy(&number, data, size < sizeof number ? size : sizeof number);
  checkEnum<lxmig::v1::MigrationMode>(word, number, lxmig::v1::MigrationMode_IsValid);
  checkEnum<lxmig::v1::Tracker>(word, number, lxmig::v1::Tracker_IsValid);
  checkEnum<lxmig::v1::MigrationResult>(word, number, lxmig::v1::MigrationResult_IsValid);
  checkEnum<lxmig::v1::Phase>(word, number, lxmig::v1::Phase_IsValid);
  checkEnum<lxmig::v1::PhaseResult>(word, number, lxmig::v1::PhaseResult_IsValid);
  // Small numbers too, so that valid values come up often.
  if (size > 0) {
    const int small = static_cast<int8_t>(data[size - 1]);
    checkEnum<lxmig::v1::MigrationMode>(word, small, lxmig::v1::MigrationMode_IsValid);
    checkEnum<lxmig::v1::Tracker>(word, small, lxmig::v1::Tracker_IsValid);
    checkEnum<lxmig::v1::MigrationResult>(word, small, lxmig::v1::MigrationResult_IsValid);
    checkEnum<lxmig::v1::Phase>(word, small, lxmig::v1::Phase_IsValid);
    checkEnum<lxmig::v1::PhaseResult>(word, small, lxmig::v1::PhaseResult_IsValid);
  }
  return 0;
}
