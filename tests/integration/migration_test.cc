// End-to-end: a real two-node test bed, real LXC containers, real CRIU.
// A stateful workload (tests/workloads/counter_server) is migrated and must
// keep its counter, pid and address; every fault leaves the source running.
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"

namespace lxmig::testing {
namespace {

constexpr int kPort = 7000;

class MigrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    missing_ = missingPrerequisite();
    if (!missing_.empty()) return;
    Testbed::get().down();
    Status st = Testbed::get().up(2);
    upError_ = st.ok() ? "" : st.message();
  }
  static void TearDownTestSuite() {
    if (missing_.empty()) Testbed::get().down();
  }
  void SetUp() override {
    LXMIG_REQUIRE(missing_.empty(), missing_);
    ASSERT_EQ(upError_, "");
  }

  Testbed& tb() { return Testbed::get(); }

  // Starts a counter_server container and returns its IP.
  std::string runServer(const std::string& name, const std::string& node, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--json", "--node", node, "run", "--name", name, "--bind",
                                     tb().workloadsDir() + ":/opt/lxmig-tests", "--", "/opt/lxmig-tests/counter_server",
                                     "--port", std::to_string(kPort), "--fork"};
    args.insert(args.end(), extra.begin(), extra.end());
    Cli c = tb().lxmig(args);
    EXPECT_EQ(c.code, 0) << c.err;
    auto j = c.json();
    if (!j.is_object()) return "";
    EXPECT_EQ(j["node"], node);
    std::string ip = j.value("ip", "");
    EXPECT_NE(tb().waitServer(ip, kPort), "") << "workload in " << name << " never answered at " << ip;
    return ip;
  }

  std::string nodeOf(const std::string& name) {
    auto j = tb().lxmig({"--json", "ps"}).json();
    if (!j.is_object()) return "";
    for (const auto& c : j["containers"])
      if (c["name"] == name) return c["node"];
    return "";
  }

  static std::string missing_;
  static std::string upError_;
};
std::string MigrationTest::missing_;
std::string MigrationTest::upError_;

TEST_F(MigrationTest, StatusListsNodesAndClient) {
  Cli c = tb().lxmig({"--json", "testbed", "status"});
  ASSERT_EQ(c.code, 0) << c.err;
  auto j = c.json();
  ASSERT_TRUE(j.is_object()) << c.out;
  ASSERT_EQ(j["nodes"].size(), 2u);
  EXPECT_EQ(j["nodes"][0]["name"], "n1");
  EXPECT_FALSE(j["nodes"][0]["netns"].get<std::string>().empty());
  EXPECT_FALSE(j["nodes"][0]["address"].get<std::string>().empty());
  EXPECT_FALSE(j["client"]["netns"].get<std::string>().empty());
}

TEST_F(MigrationTest, RunExecPsRemove) {
  std::string ip = runServer("basic", "n1");
  ASSERT_FALSE(ip.empty());
  EXPECT_EQ(nodeOf("basic"), "n1");
  Cli e = tb().lxmig({"exec", "basic", "--", "/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"});
  EXPECT_EQ(e.code, 3);
  EXPECT_EQ(e.out, "hello\n");
  EXPECT_EQ(e.err, "oops\n");
  Cli h = tb().lxmig({"exec", "basic", "--", "hostname"});
  EXPECT_EQ(h.code, 0);
  EXPECT_EQ(h.out, "basic\n");
  Cli rm = tb().lxmig({"rm", "basic"});
  EXPECT_EQ(rm.code, 0) << rm.err;
  EXPECT_EQ(nodeOf("basic"), "");
  EXPECT_EQ(tb().clientRequest(ip, kPort, "GET", 500), "");
}

TEST_F(MigrationTest, MigrationKeepsStatePidAndAddress) {
  std::string ip = runServer("mig1", "n1", {"--mem", "32"});
  ASSERT_FALSE(ip.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string before = tb().clientRequest(ip, kPort, "GET");
  std::string sumBefore = tb().clientRequest(ip, kPort, "SUM");
  ASSERT_GT(field(before, "counter"), 0) << before;

  Cli m = tb().lxmig({"--json", "migrate", "mig1", "--to", "n2"});
  ASSERT_EQ(m.code, 0) << m.err << m.out;
  auto r = m.json();
  ASSERT_TRUE(r.is_object()) << m.out;
  EXPECT_EQ(r["result"], "committed");
  EXPECT_EQ(r["container"], "mig1");
  EXPECT_EQ(r["source"], "n1");
  EXPECT_EQ(r["target"], "n2");
  EXPECT_GT(r["downtime_ms"].get<int64_t>(), 0);
  EXPECT_GE(r["total_ms"].get<int64_t>(), r["downtime_ms"].get<int64_t>());
  EXPECT_GT(r["bytes"].get<uint64_t>(), 32ull << 20) << "the images hold the 32 MiB blob";
  std::vector<std::string> phases;
  for (const auto& p : r["phases"]) {
    phases.push_back(p["name"]);
    EXPECT_EQ(p["result"], "ok") << p.dump();
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"prepare", "sync", "freeze", "dump", "transfer", "restore", "commit"}));

  EXPECT_EQ(nodeOf("mig1"), "n2");
  std::string after = tb().waitServer(ip, kPort, 10000);
  ASSERT_NE(after, "") << "not reachable at the same address after migration";
  EXPECT_GE(field(after, "counter"), field(before, "counter")) << before << " -> " << after;
  EXPECT_EQ(field(after, "pid"), field(before, "pid")) << "pid inside the container changed";
  EXPECT_EQ(field(after, "start_ns"), field(before, "start_ns")) << "the workload restarted";
  EXPECT_NE(field(before, "pid"), 1);
  EXPECT_EQ(tb().clientRequest(ip, kPort, "SUM"), sumBefore) << "memory content changed";
  // The counter keeps running on the target.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(field(tb().clientRequest(ip, kPort, "GET"), "counter"), field(after, "counter"));

  // The source holds nothing any more.
  EXPECT_FALSE(pathExists(tb().stateDir("n1") + "/lxc/mig1"));

  // Audit: the migration with its phases.
  std::string id = r["id"];
  Cli show = tb().lxmig({"--json", "audit", "show", id});
  ASSERT_EQ(show.code, 0) << show.err;
  auto a = show.json();
  EXPECT_EQ(a["result"], "committed");
  EXPECT_EQ(a["phases"].size(), 7u);
  Cli list = tb().lxmig({"--json", "audit", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  bool found = false;
  for (const auto& mm : list.json()["migrations"]) found |= mm["id"] == id;
  EXPECT_TRUE(found);

  // And back again, to prove the target's copy is a full citizen.
  Cli back = tb().lxmig({"--json", "migrate", "mig1", "--to", "n1"});
  ASSERT_EQ(back.code, 0) << back.err << back.out;
  std::string again = tb().waitServer(ip, kPort, 10000);
  EXPECT_EQ(field(again, "pid"), field(before, "pid"));
  EXPECT_EQ(field(again, "start_ns"), field(before, "start_ns"));
  EXPECT_EQ(tb().lxmig({"rm", "mig1"}).code, 0);
}

TEST_F(MigrationTest, UnknownContainerAndNode) {
  Cli c = tb().lxmig({"migrate", "nosuch", "--to", "n2"});
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.err.find("no container `nosuch`"), std::string::npos) << c.err;
  EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << "one line: " << c.err;

  std::string ip = runServer("unk", "n1");
  Cli n = tb().lxmig({"migrate", "unk", "--to", "n9"});
  EXPECT_NE(n.code, 0);
  EXPECT_NE(n.err.find("unknown node `n9`"), std::string::npos) << n.err;
  EXPECT_EQ(nodeOf("unk"), "n1");
  EXPECT_NE(tb().waitServer(ip, kPort, 3000), "");
  // The refusal is in the audit.
  auto l = tb().lxmig({"--json", "audit", "list", "--container", "unk"}).json();
  ASSERT_TRUE(l.is_object());
  ASSERT_FALSE(l["migrations"].empty());
  EXPECT_EQ(l["migrations"][0]["result"], "refused");
  EXPECT_EQ(tb().lxmig({"rm", "unk"}).code, 0);
}

TEST_F(MigrationTest, TargetAlreadyHoldsName) {
  std::string ip = runServer("dup", "n1");
  std::string ip2 = runServer("dup", "n2");
  ASSERT_NE(ip, ip2);
  std::string before = tb().clientRequest(ip, kPort, "GET");
  Cli c = tb().lxmig({"--node", "n1", "migrate", "dup", "--to", "n2"});
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.err.find("already holds a container named `dup`"), std::string::npos) << c.err;
  std::string after = tb().clientRequest(ip, kPort, "GET");
  EXPECT_EQ(field(after, "start_ns"), field(before, "start_ns"));
  EXPECT_GE(field(after, "counter"), field(before, "counter"));
  EXPECT_EQ(tb().lxmig({"--node", "n1", "rm", "dup"}).code, 0);
  EXPECT_EQ(tb().lxmig({"--node", "n2", "rm", "dup"}).code, 0);
}

TEST_F(MigrationTest, CriuDumpFailureThawsSource) {
  // A userfaultfd held open is something CRIU refuses to dump.
  std::string ip = runServer("nodump", "n1", {"--uffd"});
  std::string before = tb().clientRequest(ip, kPort, "GET");
  Cli c = tb().lxmig({"--json", "migrate", "nodump", "--to", "n2"});
  EXPECT_NE(c.code, 0);
  auto r = c.json();
  ASSERT_TRUE(r.is_object()) << c.out << c.err;
  EXPECT_EQ(r["result"], "aborted");
  EXPECT_NE(r["error"].get<std::string>().find("CRIU dump"), std::string::npos) << r.dump();
  EXPECT_NE(r["error"].get<std::string>().find("userfaultfd"), std::string::npos) << r.dump();
  EXPECT_EQ(nodeOf("nodump"), "n1");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string after = tb().waitServer(ip, kPort, 5000);
  EXPECT_EQ(field(after, "start_ns"), field(before, "start_ns"));
  EXPECT_GT(field(after, "counter"), field(before, "counter")) << "source must run again";
  EXPECT_FALSE(pathExists(tb().stateDir("n2") + "/lxc/nodump"));
  EXPECT_EQ(tb().lxmig({"rm", "nodump"}).code, 0);
}

TEST_F(MigrationTest, TargetUnreachable) {
  std::string ip = runServer("unreach", "n1");
  int pid = tb().agentPid("n2");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);  // alive but silent: the worst kind of unreachable
  Cli c = tb().lxmig({"--node", "n1", "migrate", "unreach", "--to", "n2"}, 120000);
  ::kill(pid, SIGCONT);
  EXPECT_NE(c.code, 0);
  EXPECT_NE(c.err.find("unreachable"), std::string::npos) << c.err;
  EXPECT_NE(tb().waitServer(ip, kPort, 5000), "");
  EXPECT_EQ(tb().lxmig({"rm", "unreach"}).code, 0);
}

TEST_F(MigrationTest, TargetKilledDuringTransfer) {
  std::string ip = runServer("killed", "n1", {"--mem", "512"});
  ASSERT_FALSE(ip.empty());
  std::string before = tb().clientRequest(ip, kPort, "GET");
  int pid = tb().agentPid("n2");
  ASSERT_GT(pid, 0);
  // Kill the target agent as soon as images start arriving.
  std::thread killer([&] {
    std::string images = tb().stateDir("n2") + "/images";
    for (int i = 0; i < 3000; ++i) {
      auto r = tb().nodeExec("n2", {"sh", "-c", "du -sm " + images + " | cut -f1"});
      if (std::atoi(r.out.c_str()) >= 16) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
  });
  Cli c = tb().lxmig({"--json", "--node", "n1", "migrate", "killed", "--to", "n2"}, 180000);
  killer.join();
  EXPECT_NE(c.code, 0);
  auto r = c.json();
  ASSERT_TRUE(r.is_object()) << c.out << c.err;
  EXPECT_EQ(r["result"], "aborted") << r.dump();
  std::string after = tb().waitServer(ip, kPort, 5000);
  EXPECT_EQ(field(after, "start_ns"), field(before, "start_ns"));
  EXPECT_EQ(nodeOf("killed"), "n1");
  // The restarted target cleans what the dead one left.
  ASSERT_TRUE(tb().restartAgent("n2").ok());
  auto ls = tb().nodeExec("n2", {"sh", "-c", "ls -A " + tb().stateDir("n2") + "/lxc " + tb().stateDir("n2") + "/images"});
  EXPECT_EQ(ls.out.find("incoming"), std::string::npos) << ls.out;
  EXPECT_EQ(ls.out.find("killed"), std::string::npos) << ls.out;
  EXPECT_EQ(tb().lxmig({"rm", "killed"}).code, 0);
}

}  // namespace
}  // namespace lxmig::testing
