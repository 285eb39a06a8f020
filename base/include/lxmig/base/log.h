// Levelled logging to stderr: "2026-11-24T10:00:00.123Z lxmigd[42] W engine: text",
// or to the journal with structured fields when stderr is the journal's
// stream (run by systemd); the agent also keeps its recent lines for
// `lxmig logs`. A line carries the migration and container its thread is
// working on (ScopedContext).
//
//   LXMIG_LOG(kInfo, "engine") << "migration " << id << " committed";
//   log::setLevel(log::Level::kDebug);
//   log::ScopedContext about(id, "web");   // lines of this thread name them
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace lxmig::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void setLevel(Level level);
Level level();
// The program name printed in every line ("lxmigd", "lxmig").
void setProgram(std::string_view name);
// Parses "debug|info|warn|error|off".
bool parseLevel(std::string_view text, Level* out);
void write(Level level, std::string_view category, std::string_view text);
std::string_view levelName(Level level);  // "debug" ... "error"
// A wall-clock time in ms as lines show it: "2026-11-24T10:00:00.123Z".
std::string isoTime(int64_t ms);

// What the lines of this thread are about until it goes out of scope (the
// previous context comes back).
class ScopedContext {
 public:
  ScopedContext(std::string migration, std::string container);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  std::string prevMigration_, prevContainer_;
};

// A line as kept in memory.
struct Record {
  int64_t atMs = 0;  // wall clock
  Level level = Level::kInfo;
  std::string category, text, migration, container;
};
// Keeps the last `lines` lines (0: none, the default); older ones go.
void keepRecent(size_t lines);
// The last `max` kept lines at `min` or above, oldest first; only those of
// `migration` when it is not empty.
std::vector<Record> recent(size_t max, Level min, std::string_view migration);

// Lines go to the journal (native protocol, fields MESSAGE, PRIORITY,
// SYSLOG_IDENTIFIER, LXMIG_CATEGORY, LXMIG_MIGRATION, LXMIG_CONTAINER)
// when $JOURNAL_STREAM names this process's stderr; true if so. Call once
// at start, before threads.
bool useJournalIfStderrIsJournal();
// The same to the journal socket at `path` (tests); "" goes back to stderr.
void sendToJournal(const std::string& path);

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
