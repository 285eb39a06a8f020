// Real daemons, moved live through the CLI on the real test bed: PostgreSQL
// 15 (postmaster and backends under uid postgres, shared buffers in shared
// memory, the data directory in the container's writable area) under
// pgbench, moved with pre-copy and back with stop-and-copy. What its
// clients saw is checked, not only what the agent says: no failed or
// aborted transaction, every acknowledged transaction in the database
// exactly once, and no new connection lost.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"
#include "unit/temp_dir.h"

namespace lxmig::testing {
namespace {

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";
constexpr int kPgPort = 5432;

// Runs as root inside the container: the data directory owned by postgres
// in the writable area, initdb, then the postmaster as the container's
// init, under uid postgres.
constexpr const char* kPgStart = R"(#!/bin/sh
set -e
B=/usr/lib/postgresql/15/bin
mkdir -p /var/lib/pg
chown postgres:postgres /var/lib/pg
exec setpriv --reuid=postgres --regid=postgres --init-groups sh -c "
  $B/initdb -D /var/lib/pg -A trust -U postgres >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log >&2; exit 1; }
  echo 'host all all 0.0.0.0/0 trust' >> /var/lib/pg/pg_hba.conf
  exec $B/postgres -D /var/lib/pg -c listen_addresses='*' -c unix_socket_directories=/tmp -c max_connections=50"
)";

// "number of transactions actually processed: 123" -> 123; -1 if absent.
long long pgbenchCount(const std::string& out, const std::string& label) {
  auto pos = out.find(label + ": ");
  if (pos == std::string::npos) return -1;
  return std::atoll(out.c_str() + pos + label.size() + 2);
}

class DaemonsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    missing_ = missingPrerequisite();
    if (missing_.empty() && !pathExists(std::string(kPgBin) + "/postgres"))
      missing_ = "PostgreSQL 15 (scripts/setup.sh installs postgresql-15)";
    if (!missing_.empty()) return;
    (void)Testbed::get().down();
    Status st = Testbed::get().up(2);
    upError_ = st.ok() ? "" : st.message();
  }
  static void TearDownTestSuite() {
    if (!missing_.empty()) return;
    Status st = Testbed::get().down();
    EXPECT_TRUE(st.ok()) << st.message();
  }
  void SetUp() override {
    LXMIG_REQUIRE(missing_.empty(), missing_);
    ASSERT_EQ(upError_, "");
  }
  void TearDown() override {
    if (!HasFailure()) return;
    for (const char* n : {"n1", "n2"}) {
      auto log = readFile(tb().runDir() + "/" + n + "/agent.log");
      if (!log.ok()) continue;
      auto lines = split(*log, '\n');
      std::fprintf(stderr, "---- last lines of %s's agent log ----\n", n);
      for (size_t i = lines.size() > 40 ? lines.size() - 40 : 0; i < lines.size(); ++i)
        std::fprintf(stderr, "%s\n", lines[i].c_str());
    }
  }
  Testbed& tb() { return Testbed::get(); }

  std::string nodeOf(const std::string& name) {
    auto j = tb().lxmig({"--json", "ps"}).json();
    if (!j.is_object()) return "";
    for (const auto& c : j["containers"])
      if (c["name"] == name) return c["node"];
    return "";
  }

  // psql in the client namespace: the query's rows, unaligned.
  std::string sql(const std::string& ip, const std::string& query) {
    CommandOutput r = tb().clientExec({"psql", "-h", ip, "-U", "postgres", "-Atc", query, "postgres"});
    EXPECT_EQ(r.exitCode, 0) << query << ": " << r.err;
    return std::string(trim(r.out));
  }

  static std::string missing_;
  static std::string upError_;
};
std::string DaemonsTest::missing_;
std::string DaemonsTest::upError_;

TEST_F(DaemonsTest, PostgresUnderPgbenchMovesLiveAndLosesNothing) {
  testing::TempDir dir("lxmig-pg");
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/start.sh", kPgStart, 0755).ok());
  ::chmod(dir.path().c_str(), 0755);
  Cli run = tb().lxmig({"--json", "--node", "n1", "run", "--name", "pg", "--publish", std::to_string(kPgPort), "--bind",
                        dir.path() + ":/opt/pg", "--", "/opt/pg/start.sh"});
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string ip = run.json().value("ip", "");
  bool up = false;
  for (int i = 0; i < 120 && !up; ++i) {
    up = tb().clientExec({"psql", "-h", ip, "-U", "postgres", "-Atc", "select 1", "postgres"}).out == "1\n";
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(up) << "PostgreSQL never answered at " << ip;
  // Its processes run as postgres, not root.
  Cli uid = tb().lxmig({"exec", "pg", "--", "stat", "-c", "%U", "/proc/1"});
  ASSERT_EQ(trim(uid.out), "postgres");

  const std::string pgbench = std::string(kPgBin) + "/pgbench";
  CommandOutput init =
      tb().clientExec({pgbench, "-h", ip, "-U", "postgres", "-i", "-s", "20", "-q", "postgres"}, 300000);
  ASSERT_EQ(init.exitCode, 0) << init.err;

  // The load: 4 clients with their own connection, 2 that connect for each
  // transaction (-n: nothing vacuumed or truncated, so the history keeps
  // every transaction), and a third client that times whole connections
  // (connect, one query, disconnect) every 50 ms.
  const std::string out = dir.path() + "/out";
  std::filesystem::create_directories(out);
  SpawnOptions so;
  so.stdoutPath = out + "/steady.txt";
  so.stderrPath = out + "/steady.err";
  auto steady = spawn(tb().clientArgv({pgbench, "-h", ip, "-U", "postgres", "-n", "-c", "4", "-j", "2", "-T", "40",
                                       "--max-tries=1", "-l", "--log-prefix=" + out + "/steady", "postgres"}),
                      so);
  ASSERT_TRUE(steady.ok());
  so.stdoutPath = out + "/connecting.txt";
  so.stderrPath = out + "/connecting.err";
  auto connecting =
      spawn(tb().clientArgv({pgbench, "-h", ip, "-U", "postgres", "-n", "-C", "-c", "2", "-T", "40", "--max-tries=1",
                             "-l", "--log-prefix=" + out + "/connecting", "postgres"}),
            so);
  ASSERT_TRUE(connecting.ok());
  so.stdoutPath = out + "/connects.txt";
  so.stderrPath = out + "/connects.err";
  const std::string loop =
      "end=$((SECONDS+40)); while ((SECONDS<end)); do t0=$(date +%s%N); "
      "if PGCONNECT_TIMEOUT=10 psql -h " +
      ip +
      " -U postgres -Atc 'select 1' postgres >/dev/null 2>&1; then r=ok; else r=failed; fi; "
      "echo \"$r $(( ($(date +%s%N) - t0) / 1000000 ))\"; sleep 0.05; done";
  auto prober = spawn(tb().clientArgv({"bash", "-c", loop}), so);
  ASSERT_TRUE(prober.ok());
  std::this_thread::sleep_for(std::chrono::seconds(5));

  int64_t longestDowntime = 0;
  for (const char* mode : {"pre-copy", "stop-and-copy"}) {
    const std::string from = nodeOf("pg"), to = from == "n1" ? "n2" : "n1";
    Cli m = tb().lxmig({"--json", "migrate", "pg", "--to", to, "--mode", mode});
    ASSERT_EQ(m.code, 0) << mode << ": " << m.err << m.out;
    auto j = m.json();
    EXPECT_EQ(j["result"], "committed") << m.out;
    // Processes of uid postgres are tracked (no fallback to stop-and-copy).
    EXPECT_EQ(j["mode"], mode) << m.out;
    EXPECT_TRUE(j.value("warnings", nlohmann::json::array()).empty()) << m.out;
    EXPECT_EQ(nodeOf("pg"), to);
    longestDowntime = std::max<int64_t>(longestDowntime, j.value("downtime_ms", 0));
    std::fprintf(stderr, "%s: downtime %lld ms\n", mode, static_cast<long long>(j.value("downtime_ms", 0)));
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }

  auto steadyRc = steady->wait(90000), connectingRc = connecting->wait(90000), proberRc = prober->wait(90000);
  ASSERT_TRUE(steadyRc.ok() && connectingRc.ok() && proberRc.ok()) << "a client still runs 90 s later";
  const std::string steadyOut = readFile(out + "/steady.txt").value_or("");
  const std::string connectingOut = readFile(out + "/connecting.txt").value_or("");
  EXPECT_EQ(*steadyRc, 0) << steadyOut << readFile(out + "/steady.err").value_or("");
  EXPECT_EQ(*connectingRc, 0) << connectingOut << readFile(out + "/connecting.err").value_or("");
  EXPECT_EQ(pgbenchCount(steadyOut, "number of failed transactions"), 0) << steadyOut;
  EXPECT_EQ(pgbenchCount(connectingOut, "number of failed transactions"), 0) << connectingOut;
  const long long done = pgbenchCount(steadyOut, "number of transactions actually processed") +
                         pgbenchCount(connectingOut, "number of transactions actually processed");
  ASSERT_GT(done, 1000) << steadyOut << connectingOut;

  // Exactly once: every transaction pgbench counted left one history row,
  // and the balances add up to the history's deltas.
  EXPECT_EQ(sql(ip, "select count(*) from pgbench_history"), std::to_string(done));
  EXPECT_EQ(sql(ip, "select sum(abalance) from pgbench_accounts"), sql(ip, "select sum(delta) from pgbench_history"));
  EXPECT_EQ(sql(ip, "select sum(tbalance) from pgbench_tellers"), sql(ip, "select sum(delta) from pgbench_history"));

  // No new connection failed; the slowest, and the longest transaction,
  // are reported beside the downtime.
  int connects = 0, failed = 0;
  long long slowestConnect = 0;
  std::istringstream lines(readFile(out + "/connects.txt").value_or(""));
  for (std::string r, line; std::getline(lines, line);) {
    std::istringstream f(line);
    long long ms = 0;
    f >> r >> ms;
    ++connects;
    if (r != "ok") ++failed;
    slowestConnect = std::max(slowestConnect, ms);
  }
  EXPECT_GT(connects, 50);
  EXPECT_EQ(failed, 0) << "new connections failed";
  long long longestTx = 0;
  for (const auto& name : listDir(out).value_or({})) {
    if (!startsWith(name, "steady.") && !startsWith(name, "connecting.")) continue;
    if (name.find(".txt") != std::string::npos || name.find(".err") != std::string::npos) continue;
    std::istringstream log(readFile(out + "/" + name).value_or(""));
    // client_id transaction_no time_us script_no time_epoch time_us
    for (std::string line; std::getline(log, line);) {
      std::istringstream f(line);
      long long client = 0, tx = 0, us = 0;
      f >> client >> tx >> us;
      longestTx = std::max(longestTx, us / 1000);
    }
  }
  std::fprintf(stderr,
               "longest downtime %lld ms, longest transaction %lld ms, slowest new connection %lld ms "
               "(%d connections)\n",
               static_cast<long long>(longestDowntime), longestTx, slowestConnect, connects);
  RecordProperty("longest_downtime_ms", static_cast<int>(longestDowntime));
  RecordProperty("longest_transaction_ms", static_cast<int>(longestTx));
  RecordProperty("slowest_connection_ms", static_cast<int>(slowestConnect));
  EXPECT_GT(longestTx, 0) << "pgbench wrote no transaction log";

  Cli rm = tb().lxmig({"rm", "pg"});
  EXPECT_EQ(rm.code, 0) << rm.err;
}

}  // namespace
}  // namespace lxmig::testing
