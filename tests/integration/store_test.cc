// The cluster store on the test bed (`testbed up --etcd`): a real etcd in
// the client namespace, a cluster file that lists no peer address. Agents
// register under a 3 s lease and find each other there: a migration works
// with addresses from etcd only; a node whose agent dies drops out of
// `lxmig nodes` and placement, and is back once it restarts; the
// rebalancer's lock and a container's move lock are etcd keys that a
// second run or move respects, and a finished run releases.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"

namespace lxmig::testing {
namespace {

using namespace std::chrono_literals;

class StoreTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() {
    upForSuite(2, ::access("/usr/bin/etcd", X_OK) == 0 ? "" : "etcd (apt-get install etcd-server)", true);
  }
  static void TearDownTestSuite() { downAfterSuite(); }

  // etcdctl in the client namespace, against the test bed's etcd.
  CommandOutput etcdctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env", "ETCDCTL_API=3", "etcdctl", "--endpoints", "http://10.99.0.2:2379"};
    argv.insert(argv.end(), args.begin(), args.end());
    return tb().clientExec(argv);
  }
  // The nodes `lxmig nodes` lists.
  std::set<std::string> listedNodes() {
    std::set<std::string> out;
    const auto j = tb().lxmig({"--json", "nodes"}).json();
    if (j.contains("nodes"))
      for (const auto& n : j["nodes"]) out.insert(n["name"].get<std::string>());
    return out;
  }
  template <typename F>
  static bool eventually(F done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(200ms);
    }
    return done();
  }
};

TEST_F(StoreTest, NodesComeAndGoAndLocksSpanTheCluster) {
  const std::set<std::string> both = {"n1", "n2"};
  // Registered in etcd (the CLI falls back to the file's names while its
  // agent cannot read etcd, so `lxmig nodes` alone does not tell).
  ASSERT_TRUE(eventually(
      [&] {
        const std::string keys = etcdctl({"get", "--prefix", "--keys-only", "/lxmig/nodes/"}).out;
        return keys.find("/lxmig/nodes/n1") != std::string::npos && keys.find("/lxmig/nodes/n2") != std::string::npos;
      },
      10s))
      << "nodes did not register in etcd";
  ASSERT_TRUE(eventually([&] { return listedNodes() == both; }, 10s));
  auto cluster = readFile(tb().runDir() + "/cluster.toml");
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster->find("address = \"10.99.0.1"), std::string::npos) << "the cluster file names peer addresses";

  // A migration between nodes that know each other's address from etcd only.
  Cli run = tb().lxmig({"--node", "n1", "run", "--name", "c1", "--", "/bin/sh", "-c", "while :; do sleep 1; done"});
  ASSERT_EQ(run.code, 0) << run.err;
  Cli mig = tb().lxmig({"migrate", "c1", "--to", "n2", "--mode", "stop-and-copy"});
  ASSERT_EQ(mig.code, 0) << mig.err << mig.out;
  EXPECT_EQ(nodeOf("c1"), "n2");

  // The rebalancer's lock, held elsewhere: a run does not act, a dry run does.
  ASSERT_EQ(etcdctl({"put", "/lxmig/locks/rebalance", "ops rebalance pid 7"}).exitCode, 0);
  Cli held = tb().lxmig({"rebalance"});
  EXPECT_EQ(held.code, 1);
  EXPECT_NE(held.err.find("held by `ops rebalance pid 7`"), std::string::npos) << held.err;
  EXPECT_NE(held.err.find("not acting"), std::string::npos) << held.err;
  Cli dry = tb().lxmig({"rebalance", "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  ASSERT_EQ(etcdctl({"del", "/lxmig/locks/rebalance"}).exitCode, 0);
  Cli free = tb().lxmig({"rebalance"});
  EXPECT_EQ(free.code, 0) << free.err;
  EXPECT_TRUE(eventually(
      [&] {
        return etcdctl({"get", "/lxmig/locks/rebalance"}).out.empty();
      },
      2s))
      << "a finished run left its lock: " << etcdctl({"get", "/lxmig/locks/rebalance"}).out;

  // A container's move lock, held elsewhere: the move is refused, the
  // container runs where it was.
  ASSERT_EQ(etcdctl({"put", "/lxmig/locks/containers/c1", "n9 migration 0123456789abcdef"}).exitCode, 0);
  Cli locked = tb().lxmig({"migrate", "c1", "--to", "n1"});
  EXPECT_NE(locked.code, 0);
  EXPECT_NE(locked.err.find("being moved by `n9 migration 0123456789abcdef`"), std::string::npos) << locked.err;
  EXPECT_EQ(nodeOf("c1"), "n2");
  ASSERT_EQ(etcdctl({"del", "/lxmig/locks/containers/c1"}).exitCode, 0);
  // While a move runs it holds the lock; afterwards it is gone.
  Cli back = tb().lxmig({"migrate", "c1", "--to", "n1"});
  ASSERT_EQ(back.code, 0) << back.err << back.out;
  EXPECT_TRUE(etcdctl({"get", "--prefix", "/lxmig/locks/"}).out.empty());

  // n2's agent dies: n2 leaves the inventory after its TTL, and placement
  // no longer considers it.
  const int pid = tb().agentPid("n2");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return listedNodes() == std::set<std::string>{"n1"}; }, 10s))
      << "a dead node stayed in the inventory";
  Cli placed = tb().lxmig({"run", "--name", "c2", "--", "/bin/sh", "-c", "while :; do sleep 1; done"});
  EXPECT_EQ(placed.code, 0) << placed.err;
  EXPECT_EQ(nodeOf("c2"), "n1");
  // Back: it registers again.
  Status st = tb().restartAgent("n2");
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_TRUE(eventually([&] { return listedNodes() == both; }, 10s)) << "a restarted node did not register again";
  for (const auto& c : {"c1", "c2"}) EXPECT_EQ(tb().lxmig({"rm", c}).code, 0) << c;
}

}  // namespace
}  // namespace lxmig::testing
