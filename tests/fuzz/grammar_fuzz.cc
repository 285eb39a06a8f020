// base/grammar.h on any bytes: what a check accepts really has the shape it
// promises (no control characters, no `..` component, bounds), every error
// is one line, bounded numbers parse back to their text, and what is shown
// on a terminal has no control character left.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "lxmig/base/grammar.h"

namespace {

bool hasControl(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// A C1 control in UTF-8 (U+0080 to U+009F).
bool hasC1(const std::string& s) {
  for (size_t i = 0; i + 1 < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) == 0xc2 && (static_cast<unsigned char>(s[i + 1]) & 0xe0) == 0x80) return true;
  return false;
}

void oneLine(const lxmig::Status& st) { LXMIG_FUZZ_CHECK(st.ok() || st.message().find('\n') == std::string::npos); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  const std::string s(reinterpret_cast<const char*>(in), size);
  for (auto check : {lxmig::checkContainerName, lxmig::checkNodeName, lxmig::checkMigrationId}) {
    auto st = check(s);
    oneLine(st);
    if (st.ok()) LXMIG_FUZZ_CHECK(!s.empty() && !hasControl(s) && s.find('/') == std::string::npos && s != "..");
  }
  auto rel = lxmig::checkRelativePath(s);
  oneLine(rel);
  if (rel.ok() && s != ".") {
    LXMIG_FUZZ_CHECK(s[0] != '/' && s.find("//") == std::string::npos && s.find('\0') == std::string::npos);
    LXMIG_FUZZ_CHECK(("/" + s + "/").find("/../") == std::string::npos &&
                     ("/" + s + "/").find("/./") == std::string::npos);
  }
  auto abs = lxmig::checkAbsolutePath(s);
  oneLine(abs);
  if (abs.ok()) LXMIG_FUZZ_CHECK(s[0] == '/' && (s + "/").find("/../") == std::string::npos);
  auto text = lxmig::checkPlainText(s, "value", 64);
  oneLine(text);
  if (text.ok()) LXMIG_FUZZ_CHECK(!hasControl(s) && s.size() <= 64);
  auto n = lxmig::parseUint(s, "n", 3, 1000000);
  oneLine(n.status());
  if (n.ok()) LXMIG_FUZZ_CHECK(*n >= 3 && *n <= 1000000 && std::to_string(*n) == s);
  LXMIG_FUZZ_CHECK(!hasControl(lxmig::quote(s)) && !hasC1(lxmig::quote(s)));
  const std::string shown = lxmig::printable(s);
  LXMIG_FUZZ_CHECK(!hasControl(shown) && !hasC1(shown) && shown.size() >= s.size());
  if (!hasControl(s) && !hasC1(s)) LXMIG_FUZZ_CHECK(shown == s);
  return 0;
}
