// Real daemons, moved live through the CLI on the real test bed, with
// pre-copy and back with stop-and-copy: PostgreSQL 15 (postmaster and
// backends under uid postgres, shared buffers in shared memory, the data
// directory in the container's writable area) under pgbench, and
// redis-server under uid redis under redis-benchmark. What their clients
// saw is checked, not only what the agent says: no failed or aborted
// transaction, every acknowledged write in the database exactly once, and
// no new connection lost.
#include <signal.h>
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

// The user of a container's workload: the first child of its lxmig-init.
constexpr const char* kWorkloadUser = "stat -c %U /proc/$(cut -d' ' -f1 /proc/1/task/1/children)";

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";
constexpr int kPgPort = 5432;

// "number of transactions actually processed: 123" -> 123; -1 if absent.
long long pgbenchCount(const std::string& out, const std::string& label) {
  auto pos = out.find(label + ": ");
  if (pos == std::string::npos) return -1;
  return std::atoll(out.c_str() + pos + label.size() + 2);
}

class DaemonsTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() {
    upForSuite(2, pathExists(std::string(kPgBin) + "/postgres")
                      ? ""
                      : "PostgreSQL 15 (scripts/setup.sh installs postgresql-15)");
  }
  static void TearDownTestSuite() { downAfterSuite(); }

  // psql in the client namespace: the query's rows, unaligned.
  std::string sql(const std::string& ip, const std::string& query) {
    CommandOutput r = tb().clientExec({"psql", "-h", ip, "-U", "postgres", "-Atc", query, "postgres"});
    EXPECT_EQ(r.exitCode, 0) << query << ": " << r.err;
    return std::string(trim(r.out));
  }

  void postgresMovesLiveAndLosesNothing(const std::vector<std::string>& runFlags);
};

// PostgreSQL 15 under pgbench, moved with pre-copy and back with
// stop-and-copy; `runFlags` go to `lxmig run` (--userns).
void DaemonsTest::postgresMovesLiveAndLosesNothing(const std::vector<std::string>& runFlags) {
  testing::TempDir dir("lxmig-pg");
  std::vector<std::string> argv = {"--json",    "--node",
                                   "n1",        "run",
                                   "--name",    "pg",
                                   "--publish", std::to_string(kPgPort),
                                   "--bind",    tb().workloadsDir() + ":/opt/lxmig-tests"};
  argv.insert(argv.end(), runFlags.begin(), runFlags.end());
  argv.insert(argv.end(), {"--", "/opt/lxmig-tests/postgres_start.sh"});
  Cli run = tb().lxmig(argv);
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string ip = run.json().value("ip", "");
  bool up = false;
  for (int i = 0; i < 120 && !up; ++i) {
    up = tb().clientExec({"psql", "-h", ip, "-U", "postgres", "-Atc", "select 1", "postgres"}).out == "1\n";
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(up) << "PostgreSQL never answered at " << ip;
  // Its processes run as postgres, not root.
  Cli uid = tb().lxmig({"exec", "pg", "--", "/bin/sh", "-c", kWorkloadUser});
  ASSERT_EQ(trim(uid.out), "postgres");
  const bool userns = std::find(runFlags.begin(), runFlags.end(), "--userns") != runFlags.end();
  auto uidMap = [&] {
    Cli c = tb().lxmig({"exec", "pg", "--", "/bin/sh", "-c", "cat /proc/1/uid_map"});
    std::istringstream f(c.out);
    std::string inside, outside, count;
    f >> inside >> outside >> count;
    return inside + " " + outside + " " + count;
  };
  ASSERT_EQ(uidMap(), userns ? "0 100000 65536" : "0 0 4294967295");

  const std::string pgbench = std::string(kPgBin) + "/pgbench";
  CommandOutput init =
      tb().clientExec({pgbench, "-h", ip, "-U", "postgres", "-i", "-s", "20", "-q", "postgres"}, 300000);
  ASSERT_EQ(init.exitCode, 0) << init.err;

  // The load: 4 clients with their own connection (-n: nothing vacuumed or
  // truncated, so the history keeps every transaction), and a client that
  // times whole connections (connect, one query, disconnect) every 50 ms,
  // with PostgreSQL's psql itself: /usr/bin/psql is Debian's Perl wrapper,
  // whose start (~75 ms here) would be counted as connection time.
  // pgbench -C (a connection per transaction) is not part of it: a
  // connection opened while the container is frozen can hang for good
  // (issue 16) and pgbench has no connect timeout.
  const std::string out = dir.path() + "/out";
  std::filesystem::create_directories(out);
  SpawnOptions so;
  so.stdoutPath = out + "/steady.txt";
  so.stderrPath = out + "/steady.err";
  auto steady = spawn(tb().clientArgv({pgbench, "-h", ip, "-U", "postgres", "-n", "-c", "4", "-j", "2", "-T", "40",
                                       "--max-tries=1", "-l", "--log-prefix=" + out + "/steady", "postgres"}),
                      so);
  ASSERT_TRUE(steady.ok());
  so.stdoutPath = out + "/connects.txt";
  so.stderrPath = out + "/connects.err";
  auto prober =
      spawn(tb().clientArgv({std::string(LXMIG_WORKLOADS_DIR) + "/pg_connect_probe.sh", "40", kPgBin, ip}), so);
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
    if (std::string(mode) == "pre-copy") {
      // The target kept the shared buffers in a memfd through the rounds,
      // and CRIU (lxmig's shmem-held patch) took it as the object.
      for (const auto& p : j["phases"])
        if (p["name"] == "restore") EXPECT_GE(field(p.value("detail", ""), "held_shmem_objects"), 1) << m.out;
    }
    longestDowntime = std::max<int64_t>(longestDowntime, j.value("downtime_ms", 0));
    std::fprintf(stderr, "%s: downtime %lld ms\n", mode, static_cast<long long>(j.value("downtime_ms", 0)));
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }

  auto steadyRc = steady->wait(90000), proberRc = prober->wait(90000);
  ASSERT_TRUE(steadyRc.ok() && proberRc.ok()) << "a client still runs 90 s later";
  const std::string steadyOut = readFile(out + "/steady.txt").value_or("");
  EXPECT_EQ(*steadyRc, 0) << steadyOut << readFile(out + "/steady.err").value_or("");
  EXPECT_EQ(pgbenchCount(steadyOut, "number of failed transactions"), 0) << steadyOut;
  const long long done = pgbenchCount(steadyOut, "number of transactions actually processed");
  ASSERT_GT(done, 1000) << steadyOut;

  // Exactly once: every transaction pgbench counted left one history row,
  // and the balances add up to the history's deltas.
  EXPECT_EQ(sql(ip, "select count(*) from pgbench_history"), std::to_string(done));
  EXPECT_EQ(sql(ip, "select sum(abalance) from pgbench_accounts"), sql(ip, "select sum(delta) from pgbench_history"));
  EXPECT_EQ(sql(ip, "select sum(tbalance) from pgbench_tellers"), sql(ip, "select sum(delta) from pgbench_history"));

  // New connections: how many failed (issue 16: one opened while the
  // container is frozen can be lost), the slowest, and the longest
  // transaction, reported beside the downtime.
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
  // Packets that reach the container while it is frozen are held and
  // delivered on the target (issue 16): no connection is lost.
  EXPECT_EQ(failed, 0) << "new connections failed during the moves";
  long long longestTx = 0;
  for (const auto& name : listDir(out).value_or({})) {
    if (!startsWith(name, "steady.")) continue;
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
               "(%d connections, %d failed)\n",
               static_cast<long long>(longestDowntime), longestTx, slowestConnect, connects, failed);
  RecordProperty("longest_downtime_ms", static_cast<int>(longestDowntime));
  RecordProperty("longest_transaction_ms", static_cast<int>(longestTx));
  RecordProperty("slowest_connection_ms", static_cast<int>(slowestConnect));
  RecordProperty("failed_connections", failed);
  EXPECT_GT(longestTx, 0) << "pgbench wrote no transaction log";
  EXPECT_EQ(uidMap(), userns ? "0 100000 65536" : "0 0 4294967295") << "the id map did not come along";

  Cli rm = tb().lxmig({"rm", "pg"});
  EXPECT_EQ(rm.code, 0) << rm.err;
}

TEST_F(DaemonsTest, PostgresUnderPgbenchMovesLiveAndLosesNothing) { postgresMovesLiveAndLosesNothing({}); }

// The same in a user namespace of its own: postgres inside is host uid
// 100000 + its uid, root inside is no root on the host.
TEST_F(DaemonsTest, PostgresInAUserNamespaceMovesLiveAndLosesNothing) {
  postgresMovesLiveAndLosesNothing({"--userns"});
}

TEST_F(DaemonsTest, RedisOfUidRedisUnderLoadMovesLiveAndLosesNoWrite) {
  LXMIG_REQUIRE(pathExists("/usr/bin/redis-server") && pathExists("/usr/bin/redis-benchmark"),
                "redis-server and redis-tools (scripts/setup.sh installs them)");
  Cli run = tb().lxmig({"--json",
                        "--node",
                        "n1",
                        "run",
                        "--name",
                        "kv",
                        "--publish",
                        "6379",
                        "--",
                        "/usr/bin/setpriv",
                        "--reuid=redis",
                        "--regid=redis",
                        "--init-groups",
                        "/usr/bin/redis-server",
                        "--port",
                        "6379",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                        "--enable-debug-command",
                        "yes"});
  ASSERT_EQ(run.code, 0) << run.err;
  const std::string ip = run.json().value("ip", "");
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"timeout", "10", "redis-cli", "-h", ip};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::string(trim(tb().clientExec(argv).out));
  };
  bool up = false;
  for (int i = 0; i < 80 && !up; ++i) {
    up = cli({"PING"}) == "PONG";
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(up) << "redis never answered at " << ip;
  Cli uid = tb().lxmig({"exec", "kv", "--", "/bin/sh", "-c", kWorkloadUser});
  ASSERT_EQ(trim(uid.out), "redis");
  ASSERT_EQ(cli({"DEBUG", "POPULATE", "200000", "key", "200"}), "OK");

  testing::TempDir dir("lxmig-redis");
  SpawnOptions so;
  auto load = spawn(tb().clientArgv({"redis-benchmark", "-h", ip, "-t", "set,get", "-n", "100000000", "-r", "200000",
                                     "-d", "200", "-c", "4", "-q"}),
                    so);
  ASSERT_TRUE(load.ok());
  // Every acknowledged INCR is one write: the answers must count 1, 2, 3,
  // ... without a gap or a repeat, across both moves.
  so.stdoutPath = dir.path() + "/incr.txt";
  const std::string loop =
      "end=$((SECONDS+30)); while ((SECONDS<end)); do "
      "v=$(timeout 10 redis-cli -h " +
      ip + " INCR moves 2>/dev/null) || v=failed; echo \"${v:-failed}\"; sleep 0.02; done";
  auto counter = spawn(tb().clientArgv({"bash", "-c", loop}), so);
  ASSERT_TRUE(counter.ok());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (const char* mode : {"pre-copy", "stop-and-copy"}) {
    const std::string from = nodeOf("kv"), to = from == "n1" ? "n2" : "n1";
    Cli m = tb().lxmig({"--json", "migrate", "kv", "--to", to, "--mode", mode});
    ASSERT_EQ(m.code, 0) << mode << ": " << m.err << m.out;
    auto j = m.json();
    EXPECT_EQ(j["result"], "committed") << m.out;
    EXPECT_EQ(j["mode"], mode) << m.out;
    EXPECT_TRUE(j.value("warnings", nlohmann::json::array()).empty()) << m.out;
    EXPECT_EQ(nodeOf("kv"), to);
    std::fprintf(stderr, "redis %s: downtime %lld ms\n", mode, static_cast<long long>(j.value("downtime_ms", 0)));
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  auto rc = counter->wait(60000);
  ASSERT_TRUE(rc.ok());
  (void)load->signal(SIGINT);
  (void)load->wait(10000);
  std::istringstream answers(readFile(dir.path() + "/incr.txt").value_or(""));
  // An INCR whose answer was lost (a connection opened while the container
  // was frozen, issue 16) may or may not have been applied: the next answer
  // may skip one per such attempt, never more, never back.
  long long expect = 1, failed = 0, failedSince = 0, total = 0;
  for (std::string a; std::getline(answers, a); ++total) {
    if (a == "failed") {
      ++failed;
      ++failedSince;
      continue;
    }
    const long long v = std::atoll(a.c_str());
    EXPECT_GE(v, expect) << "an INCR was applied twice or the count went back";
    EXPECT_LE(v, expect + failedSince) << "an acknowledged INCR was lost";
    expect = v + 1;
    failedSince = 0;
  }
  EXPECT_LT(failed, total / 10) << "INCRs fail beyond the frozen window";
  std::fprintf(stderr, "redis: %lld INCRs, %lld failed\n", total, failed);
  EXPECT_GT(expect, 100);
  const long long final = std::atoll(cli({"GET", "moves"}).c_str());
  EXPECT_GE(final, expect - 1);
  EXPECT_LE(final, expect - 1 + failedSince);
  EXPECT_GE(std::atoll(cli({"DBSIZE"}).c_str()), 200001) << "keys were lost";
  EXPECT_EQ(trim(tb().lxmig({"exec", "kv", "--", "/bin/sh", "-c", kWorkloadUser}).out), "redis");
  Cli rm = tb().lxmig({"rm", "kv"});
  EXPECT_EQ(rm.code, 0) << rm.err;
}

}  // namespace
}  // namespace lxmig::testing
