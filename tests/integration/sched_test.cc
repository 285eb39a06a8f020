// The scheduler on a real three-node test bed, through the CLI: CPU-burning
// and memory-holding containers on n1, a pinned one among them; placement
// of a new container; `rebalance --dry-run` moves nothing; a second run
// while one holds the lock does not act; `rebalance` (two moves at once)
// moves load off n1 with
// its decisions in the audit, leaves the pinned one and the one bound to a
// device only n1 offers and, in the next run, the ones it just moved
// (cooldown); two containers merged into one (`lxmig merge`) move whole;
// `drain n1` empties n1 of everything movable (a container bound to a
// device every node offers goes too, the merged one with both processes)
// and says what stays.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"

namespace lxmig::testing {
namespace {

class SchedTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(3); }
  static void TearDownTestSuite() { downAfterSuite(); }

  // The CPU rate the agents report for `name`, -1 when not listed.
  double cpuOf(const std::string& name) {
    const auto j = tb().lxmig({"--json", "nodes"}).json();
    for (const auto& n : j["nodes"])
      for (const auto& l : n["loads"])
        if (l["name"] == name) return l["cpu"].get<double>();
    return -1;
  }
};

TEST_F(SchedTest, RebalanceDrainAndPlacementOnThreeNodes) {
  const std::vector<std::string> burn = {"/bin/sh", "-c", "while :; do :; done"};
  const std::vector<std::string> hold = {"/usr/bin/python3", "-c",
                                         "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); "
                                         "time.sleep(1e9)"};
  // tunburn needs /dev/net/tun, which only n1 offers (testbed.sh); fuseburn
  // needs /dev/fuse, which every node offers.
  for (const auto& [name, argv] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"burn1", burn}, {"burn2", burn}, {"anchor", burn}, {"hold", hold}, {"tunburn", burn}, {"fuseburn", burn}}) {
    std::vector<std::string> args = {"--node", "n1", "run", "--name", name};
    if (name == "tunburn") args.insert(args.end(), {"--device", "/dev/net/tun"});
    if (name == "fuseburn") args.insert(args.end(), {"--device", "/dev/fuse"});
    args.push_back("--");
    args.insert(args.end(), argv.begin(), argv.end());
    Cli r = tb().lxmig(args);
    ASSERT_EQ(r.code, 0) << name << ": " << r.err;
  }
  Cli pin = tb().lxmig({"pin", "anchor"});
  ASSERT_EQ(pin.code, 0) << pin.err;
  // Two sampling windows (5 s each) before the agents report CPU rates.
  for (int i = 0; i < 60 && (cpuOf("burn1") < 0.2 || cpuOf("burn2") < 0.2); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_GE(cpuOf("burn1"), 0.2) << tb().lxmig({"--json", "nodes"}).out;

  // Placement: a new container goes to an idle node, not to n1.
  Cli placed = tb().lxmig({"--json", "run", "--name", "newcomer", "--", "/usr/bin/sleep", "infinity"});
  ASSERT_EQ(placed.code, 0) << placed.err;
  EXPECT_NE(placed.json()["node"], "n1") << placed.out;
  EXPECT_TRUE(placed.json().contains("placed")) << placed.out;

  // A dry run plans and moves nothing.
  Cli dry = tb().lxmig({"--json", "rebalance", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_FALSE(dry.json()["moves"].empty()) << dry.out;
  EXPECT_EQ(tb().nodeOf("burn1"), "n1");
  EXPECT_EQ(tb().nodeOf("burn2"), "n1");

  // While another run holds the lock, a run does not act.
  {
    ASSERT_TRUE(makeDirs("/run/lxmig", 0755).ok());
    UniqueFd lock(::open("/run/lxmig/rebalance.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(lock);
    ASSERT_EQ(::flock(lock.get(), LOCK_EX | LOCK_NB), 0);
    Cli blocked = tb().lxmig({"rebalance"});
    EXPECT_NE(blocked.code, 0);
    EXPECT_NE(blocked.err.find("another rebalance"), std::string::npos) << blocked.err;
    EXPECT_EQ(tb().nodeOf("burn1"), "n1");
  }

  // The run: load leaves n1, the pinned container stays.
  Cli run = tb().lxmig({"--json", "rebalance", "--concurrency", "2"});
  ASSERT_EQ(run.code, 0) << run.err << run.out;
  auto plan = run.json();
  ASSERT_FALSE(plan["moves"].empty()) << run.out;
  std::set<std::string> moved;
  for (const auto& m : plan["moves"]) {
    EXPECT_EQ(m["result"], "committed") << m.dump();
    EXPECT_NE(m["container"], "anchor");
    EXPECT_NE(m["container"], "tunburn") << "no other node offers /dev/net/tun";
    EXPECT_NE(m["migration_id"], "");
    moved.insert(m["container"].get<std::string>());
  }
  EXPECT_LT(plan["spread_after"].get<double>(), plan["spread_before"].get<double>());
  EXPECT_EQ(tb().nodeOf("anchor"), "n1");
  EXPECT_EQ(tb().nodeOf("tunburn"), "n1");
  for (const auto& c : moved) EXPECT_NE(tb().nodeOf(c), "n1") << c;

  // Its decisions are in the audit, with the migrations they started.
  Cli q = tb().lxmig({"--json", "audit", "query", "--node", "n1",
                      "SELECT container, action, migration_id != '' AS ran FROM decisions "
                      "WHERE reason LIKE 'rebalance:%' AND reason NOT LIKE '%(dry run)' ORDER BY container"});
  ASSERT_EQ(q.code, 0) << q.err;
  int ranMoves = 0;
  bool anchorSkipped = false;
  const auto rows = q.json();  // named: a temporary would die before the loop body
  for (const auto& row : rows["rows"]) {
    if (row[2] == "move" && row[3] == 1) ++ranMoves;
    if (row[1] == "anchor" && row[2] == "skip") anchorSkipped = true;
  }
  EXPECT_EQ(ranMoves, static_cast<int>(moved.size())) << q.out;
  EXPECT_TRUE(anchorSkipped) << q.out;

  // A later plan predicts each move's downtime from the history (n1 has
  // just committed migrations; the others borrow its figure): a dry run of
  // draining a node that received one shows it.
  {
    Cli later = tb().lxmig({"--json", "drain", tb().nodeOf(*moved.begin()), "--dry-run"});
    const auto lj = later.json();
    ASSERT_FALSE(lj["moves"].empty()) << later.out;
    for (const auto& m : lj["moves"]) EXPECT_GT(m["predicted_downtime_ms"].get<int64_t>(), 0) << m.dump();
  }

  // Right after, what moved is in its cooldown.
  Cli again = tb().lxmig({"--json", "rebalance"});
  ASSERT_EQ(again.code, 0) << again.err;
  const auto second = again.json();
  for (const auto& m : second["moves"]) EXPECT_FALSE(moved.count(m["container"].get<std::string>())) << m;

  // A merged group moves as one: pair-b's process continues inside
  // pair-a (lxmig merge), and the drain below takes pair-a with it.
  for (const auto& [name, secs] :
       std::vector<std::pair<std::string, std::string>>{{"pair-a", "1000002"}, {"pair-b", "1000003"}}) {
    Cli r = tb().lxmig({"--node", "n1", "run", "--name", name, "--", "/usr/bin/sleep", secs});
    ASSERT_EQ(r.code, 0) << name << ": " << r.err;
  }
  Cli merged = tb().lxmig({"merge", "pair-a", "pair-b", "--name", "pair-a"});
  ASSERT_EQ(merged.code, 0) << merged.err << merged.out;
  EXPECT_EQ(tb().nodeOf("pair-b"), "");
  auto commandsIn = [&](const std::string& name) {
    Cli e = tb().lxmig({"exec", name, "--", "/bin/sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"});
    return e.out;
  };
  const std::string group = commandsIn("pair-a");
  ASSERT_NE(group.find("sleep 1000002"), std::string::npos) << group;
  ASSERT_NE(group.find("sleep 1000003"), std::string::npos) << group;

  // Drain: everything movable leaves n1; the pinned one stays, said so.
  Cli drain = tb().lxmig({"--json", "drain", "n1"});
  EXPECT_EQ(drain.code, 1) << "the pinned container stays: " << drain.err;
  bool anchorStays = false, tunStays = false;
  const auto drained = drain.json();
  for (const auto& s : drained["skipped"]) {
    anchorStays |= s["container"] == "anchor" && s["why"] == "pinned";
    tunStays |= s["container"] == "tunburn" && s["why"].get<std::string>().find("offers c 10:200") != std::string::npos;
  }
  EXPECT_TRUE(anchorStays && tunStays) << drain.out;
  for (const auto& name : {"burn1", "burn2", "hold", "newcomer", "fuseburn", "pair-a"})
    EXPECT_NE(tb().nodeOf(name), "n1") << name;
  const std::string after = commandsIn("pair-a");
  EXPECT_NE(after.find("sleep 1000002"), std::string::npos) << after;
  EXPECT_NE(after.find("sleep 1000003"), std::string::npos) << "the merged group did not move whole: " << after;
  EXPECT_EQ(tb().nodeOf("anchor"), "n1");
  EXPECT_EQ(tb().nodeOf("tunburn"), "n1");

  for (const auto& name : {"burn1", "burn2", "anchor", "hold", "newcomer", "tunburn", "fuseburn", "pair-a"}) {
    Cli rm = tb().lxmig({"rm", name});
    EXPECT_EQ(rm.code, 0) << name << ": " << rm.err;
  }
}

}  // namespace
}  // namespace lxmig::testing
