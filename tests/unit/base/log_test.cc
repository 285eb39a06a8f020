// Log lines: the context a thread works in, the recent lines the agent
// keeps for `lxmig logs`, and the journal's native protocol (sent to a
// datagram socket of the test's own, read back field by field).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <map>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/log.h"
#include "unit/temp_dir.h"

namespace lxmig::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keepRecent(0);
    keepRecent(100);
  }
  void TearDown() override {
    keepRecent(0);
    sendToJournal("");
  }
};

TEST_F(LogTest, LinesCarryTheirThreadsContextUntilItGoes) {
  LXMIG_LOG(kInfo, "test") << "before";
  {
    ScopedContext about("00112233445566aa", "web");
    LXMIG_LOG(kWarn, "test") << "during";
    {
      ScopedContext inner("00112233445566bb", "");
      LXMIG_LOG(kInfo, "test") << "nested";
    }
    LXMIG_LOG(kInfo, "test") << "back";
    std::thread([] { LXMIG_LOG(kInfo, "test") << "other thread"; }).join();
  }
  LXMIG_LOG(kInfo, "test") << "after";
  auto all = recent(100, Level::kDebug, "");
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[0].text, "before");
  EXPECT_EQ(all[0].migration, "");
  EXPECT_EQ(all[1].migration, "00112233445566aa");
  EXPECT_EQ(all[1].container, "web");
  EXPECT_EQ(all[1].level, Level::kWarn);
  EXPECT_EQ(all[2].migration, "00112233445566bb");
  EXPECT_EQ(all[3].migration, "00112233445566aa") << "the outer context comes back";
  EXPECT_EQ(all[4].migration, "") << "another thread has its own";
  EXPECT_EQ(all[5].migration, "");
  auto one = recent(100, Level::kDebug, "00112233445566aa");
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0].text, "during");
  EXPECT_EQ(one[1].text, "back");
  auto warns = recent(100, Level::kWarn, "");
  ASSERT_EQ(warns.size(), 1u);
  EXPECT_EQ(warns[0].text, "during");
}

TEST_F(LogTest, OnlyTheLastLinesAreKept) {
  keepRecent(3);
  for (int i = 0; i < 10; ++i) LXMIG_LOG(kInfo, "test") << "line " << i;
  auto all = recent(100, Level::kDebug, "");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].text, "line 7");
  EXPECT_EQ(all[2].text, "line 9");
  auto last = recent(2, Level::kDebug, "");
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[0].text, "line 8") << "the last ones, oldest first";
}

// journald's native protocol: NAME\n, 64-bit little-endian length, value, \n.
std::map<std::string, std::string> fieldsOf(const std::string& d) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < d.size()) {
    size_t nl = d.find('\n', pos);
    if (nl == std::string::npos || nl + 9 > d.size()) break;
    std::string name = d.substr(pos, nl - pos);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(d[nl + 1 + i])} << (8 * i);
    out[name] = d.substr(nl + 9, n);
    pos = nl + 9 + n + 1;
  }
  return out;
}

TEST_F(LogTest, TheJournalGetsStructuredFields) {
  lxmig::testing::TempDir tmp("lxmig-log-test");
  ASSERT_TRUE(tmp.ok());
  const std::string path = tmp.path() + "/journal.sock";
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(server);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  sendToJournal(path);
  setProgram("lxmigd");
  {
    ScopedContext about("00112233445566aa", "web");
    LXMIG_LOG(kWarn, "engine") << "two\nlines";
  }
  std::string d(65536, '\0');
  ssize_t n = ::recv(server.get(), d.data(), d.size(), MSG_DONTWAIT);
  ASSERT_GT(n, 0) << "nothing reached the journal socket";
  d.resize(static_cast<size_t>(n));
  auto f = fieldsOf(d);
  EXPECT_EQ(f["MESSAGE"], "engine: two\nlines");
  EXPECT_EQ(f["PRIORITY"], "4");
  EXPECT_EQ(f["SYSLOG_IDENTIFIER"], "lxmigd");
  EXPECT_EQ(f["LXMIG_CATEGORY"], "engine");
  EXPECT_EQ(f["LXMIG_MIGRATION"], "00112233445566aa");
  EXPECT_EQ(f["LXMIG_CONTAINER"], "web");
  // Without a migration, no such field.
  LXMIG_LOG(kInfo, "engine") << "plain";
  d.assign(65536, '\0');
  n = ::recv(server.get(), d.data(), d.size(), MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  d.resize(static_cast<size_t>(n));
  auto g = fieldsOf(d);
  EXPECT_EQ(g["PRIORITY"], "6");
  EXPECT_EQ(g.count("LXMIG_MIGRATION"), 0u);
}

TEST_F(LogTest, TimesAreIsoUtcWithMilliseconds) {
  EXPECT_EQ(isoTime(1796422521624), "2026-12-04T22:15:21.624Z");
  EXPECT_EQ(isoTime(-5), "1970-01-01T00:00:00.000Z");
}

TEST_F(LogTest, WithoutJournalStreamStderrStays) {
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(useJournalIfStderrIsJournal());
  ::setenv("JOURNAL_STREAM", "1:2", 1);
  EXPECT_FALSE(useJournalIfStderrIsJournal()) << "names another stream than this stderr";
  ::unsetenv("JOURNAL_STREAM");
}

}  // namespace
}  // namespace lxmig::log
