// Levelled logging to stderr: "2026-11-24T10:00:00.123Z lxmigd[42] W engine: text".
//
//   LXMIG_LOG(kInfo, "engine") << "migration " << id << " committed";
//   log::setLevel(log::Level::kDebug);
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace lxmig::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void setLevel(Level level);
Level level();
// The program name printed in every line ("lxmigd", "lxmig").
void setProgram(std::string_view name);
// Parses "debug|info|warn|error|off".
bool parseLevel(std::string_view text, Level* out);
void write(Level level, std::string_view category, std::string_view text);

class Line {
 public:
  Line(Level level, std::string_view category) : level_(level), category_(category) {}
  ~Line() { write(level_, category_, os_.str()); }
  template <typename T>
  Line& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  Level level_;
  std::string_view category_;
  std::ostringstream os_;
};

// Turns a streamed Line into a void expression (binds looser than <<).
struct Voidify {
  void operator&(const Line&) {}
};

}  // namespace lxmig::log

// An expression, not an if/else: safe as the body of an unbraced if.
#define LXMIG_LOG(lvl, category)                     \
  (::lxmig::log::Level::lvl < ::lxmig::log::level()) \
      ? (void)0                                      \
      : ::lxmig::log::Voidify() & ::lxmig::log::Line(::lxmig::log::Level::lvl, category)
