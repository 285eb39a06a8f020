#include "lxmig/base/log.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>

#include "lxmig/base/fd.h"

namespace lxmig::log {
namespace {
std::atomic<Level> g_level{Level::kInfo};
std::string g_program = "lxmig";
std::mutex g_mu;  // guards everything below
size_t g_keep = 0;
std::deque<Record> g_recent;
UniqueFd g_journal;  // a datagram socket connected to the journal, or none
thread_local std::string t_migration, t_container;

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

int priorityOf(Level l) {
  switch (l) {
    case Level::kDebug:
      return 7;
    case Level::kInfo:
      return 6;
    case Level::kWarn:
      return 4;
    default:
      return 3;
  }
}

// One field of the journal's native protocol: NAME, a newline, the value's
// length (64-bit little endian), the value, a newline; any byte allowed.
void field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.push_back('\n');
  uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(value);
  out.push_back('\n');
}

// With g_mu held. False when the journal did not take it (stderr then).
bool toJournal(Level l, std::string_view category, std::string_view text) {
  if (!g_journal) return false;
  std::string d;
  field(d, "MESSAGE", std::string(category) + ": " + std::string(text));
  field(d, "PRIORITY", std::to_string(priorityOf(l)));
  field(d, "SYSLOG_IDENTIFIER", g_program);
  field(d, "LXMIG_CATEGORY", category);
  if (!t_migration.empty()) field(d, "LXMIG_MIGRATION", t_migration);
  if (!t_container.empty()) field(d, "LXMIG_CONTAINER", t_container);
  return ::send(g_journal.get(), d.data(), d.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(d.size());
}

UniqueFd connectDatagram(const std::string& path) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) return UniqueFd();
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

}  // namespace

std::string_view levelName(Level l) {
  static constexpr std::string_view kNames[] = {"debug", "info", "warn", "error", "off"};
  return kNames[static_cast<int>(l)];
}

ScopedContext::ScopedContext(std::string migration, std::string container)
    : prevMigration_(std::move(t_migration)), prevContainer_(std::move(t_container)) {
  t_migration = std::move(migration);
  t_container = std::move(container);
}

ScopedContext::~ScopedContext() {
  t_migration = std::move(prevMigration_);
  t_container = std::move(prevContainer_);
}

void keepRecent(size_t lines) {
  std::lock_guard lk(g_mu);
  g_keep = lines;
  while (g_recent.size() > g_keep) g_recent.pop_front();
}

std::vector<Record> recent(size_t max, Level min, std::string_view migration) {
  std::lock_guard lk(g_mu);
  std::vector<Record> out;
  for (auto it = g_recent.rbegin(); it != g_recent.rend() && out.size() < max; ++it)
    if (it->level >= min && (migration.empty() || it->migration == migration)) out.push_back(*it);
  return {out.rbegin(), out.rend()};
}

bool useJournalIfStderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (!stream || ::fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2 || dev != st.st_dev || ino != st.st_ino) return false;
  sendToJournal(kJournalSocket);
  std::lock_guard lk(g_mu);
  return static_cast<bool>(g_journal);
}

void sendToJournal(const std::string& path) {
  UniqueFd fd = path.empty() ? UniqueFd() : connectDatagram(path);
  std::lock_guard lk(g_mu);
  g_journal = std::move(fd);
}

void setLevel(Level l) { g_level = l; }
Level level() { return g_level; }
void setProgram(std::string_view name) {
  std::lock_guard lk(g_mu);
  g_program = std::string(name);
}

bool parseLevel(std::string_view t, Level* out) {
  if (t == "debug") *out = Level::kDebug;
  else if (t == "info") *out = Level::kInfo;
  else if (t == "warn" || t == "warning") *out = Level::kWarn;
  else if (t == "error") *out = Level::kError;
  else if (t == "off") *out = Level::kOff;
  else return false;
  return true;
}

std::string isoTime(int64_t ms) {
  if (ms < 0) ms = 0;  // a peer's field: never a negative remainder
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm t{};
  ::gmtime_r(&secs, &t);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(ms % 1000));
  return ts;
}

void write(Level l, std::string_view category, std::string_view text) {
  static const char kLetters[] = {'D', 'I', 'W', 'E', '-'};
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  const int64_t atMs = int64_t{tv.tv_sec} * 1000 + tv.tv_usec / 1000;
  const std::string ts = isoTime(atMs);
  std::lock_guard lk(g_mu);
  if (g_keep > 0) {
    if (g_recent.size() >= g_keep) g_recent.pop_front();
    g_recent.push_back({atMs, l, std::string(category), std::string(text), t_migration, t_container});
  }
  if (toJournal(l, category, text)) return;
  std::fprintf(stderr, "%s %s[%d] %c %.*s: %.*s\n", ts.c_str(), g_program.c_str(), ::getpid(),
               kLetters[static_cast<int>(l)], static_cast<int>(category.size()), category.data(),
               static_cast<int>(text.size()), text.data());
  std::fflush(stderr);
}

}  // namespace lxmig::log
