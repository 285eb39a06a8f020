#include "lxmig/base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace lxmig::log {
namespace {
std::atomic<Level> g_level{Level::kInfo};
std::string g_program = "lxmig";
std::mutex g_mu;
}  // namespace

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

void write(Level l, std::string_view category, std::string_view text) {
  static const char kLetters[] = {'D', 'I', 'W', 'E', '-'};
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  tm t{};
  ::gmtime_r(&tv.tv_sec, &t);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>(tv.tv_usec / 1000));
  std::lock_guard lk(g_mu);
  std::fprintf(stderr, "%s %s[%d] %c %.*s: %.*s\n", ts, g_program.c_str(), ::getpid(), kLetters[static_cast<int>(l)],
               static_cast<int>(category.size()), category.data(), static_cast<int>(text.size()), text.data());
  std::fflush(stderr);
}

}  // namespace lxmig::log
