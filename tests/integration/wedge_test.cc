// A stuck restore never wedges a node (issue 20, part 3), on a real
// two-node test bed: n2's agent runs a CRIU wrapper that makes the restore
// of one named container hang (as CRIU does when it waits for a lock the
// frozen source still holds). While it hangs, n2 answers `lxmig ps` and
// takes another migration; the restore is killed at its deadline, or by
// `lxmig cancel`, or by an agent restart, and the source resumes: one
// running copy, the audit says why, no CRIU left behind. And a node that
// cannot reach a peer never hands out an address that left for that peer.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "fixtures/testbed_fixture.h"
#include "lxmig/base/files.h"

namespace lxmig::testing {
namespace {

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A process that runs (a zombie does not: this machine's init may never
// reap the orphans of a killed helper).
bool alive(long pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  auto close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z';
}

// Counts in /tmp/ticks, replaced whole (a reader never sees it empty).
const std::vector<std::string> kTicker = {"/bin/sh", "-c",
                                          "i=0; while :; do i=$((i+1)); echo $i >/tmp/ticks.new; "
                                          "mv /tmp/ticks.new /tmp/ticks; sleep 0.1; done"};

class WedgeTest : public TestbedSuite {
 protected:
  static void SetUpTestSuite() { upForSuite(2); }
  static void TearDownTestSuite() { downAfterSuite(); }

  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char tmpl[] = "/tmp/lxmig-hang-criu-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // The restore of the container named in `armed` (the dump of the one
    // in `armed-dump`) never ends; its pid (the sleep it becomes) is
    // written first.
    ASSERT_TRUE(writeFileAtomic(dir_ + "/criu",
                                "#!/bin/sh\n"
                                "if [ \"$1\" = restore ] && [ -s " +
                                    dir_ +
                                    "/armed ]; then\n"
                                    "  case \" $* \" in *\"/payload.$(cat " +
                                    dir_ +
                                    "/armed) \"*)\n"
                                    "    echo $$ >" +
                                    dir_ +
                                    "/hung; exec sleep 3600 ;;\n"
                                    "  esac\n"
                                    "fi\n"
                                    "if [ \"$1\" = dump ] && [ -s " +
                                    dir_ +
                                    "/armed-dump ]; then\n"
                                    "  case \" $* \" in *\"/payload.$(cat " +
                                    dir_ +
                                    "/armed-dump) \"*)\n"
                                    "    echo $$ >" +
                                    dir_ +
                                    "/hung; exec sleep 3600 ;;\n"
                                    "  esac\n"
                                    "fi\n"
                                    "exec /opt/lxmig/bin/criu \"$@\"\n",
                                0755)
                    .ok());
    Status st = tb().restartAgent("n2", {}, dir_);
    ASSERT_TRUE(st.ok()) << st.toString();
  }

  void TearDown() override {
    for (const char* c : {"c1", "c2", "c3", "c4"}) (void)tb().lxmig({"rm", c});
    if (!dir_.empty()) {
      (void)tb().restartAgent("n2");
      // A hang the test did not get to end (it failed): its sleep goes.
      if (long pid = hungPid(); pid > 1 && alive(pid)) ::kill(static_cast<pid_t>(pid), SIGKILL);
      (void)removeTree(dir_);
    }
    TestbedSuite::TearDown();
  }

  void arm(const std::string& name) { ASSERT_TRUE(writeFileAtomic(dir_ + "/armed", name).ok()); }
  long hungPid() const {
    auto t = readFile(dir_ + "/hung");
    return t.ok() ? std::atol(t->c_str()) : -1;
  }
  // Waits until the armed restore hangs on n2.
  bool awaitHang(int timeoutMs = 60000) const {
    for (int t = 0; t < timeoutMs / 100; ++t) {
      if (hungPid() > 1) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  void runTicker(const std::string& name) {
    Cli c = tb().lxmig(std::vector<std::string>{"--node", "n1", "run", "--name", name, "--"} + kTicker);
    ASSERT_EQ(c.code, 0) << c.err;
  }
  long ticks(const std::string& name) {
    Cli c = tb().lxmig({"--node", "n1", "exec", name, "--", "cat", "/tmp/ticks"});
    return c.code == 0 ? std::atol(c.out.c_str()) : -1;
  }
  // Where `lxmig ps` shows `name`, one line per copy ("n1 RUNNING"), or
  // its addresses (key "ip").
  std::vector<std::string> copiesOf(const std::string& name, const std::string& key = "") {
    std::vector<std::string> out;
    const auto j = tb().lxmig({"--json", "ps"}).json();
    if (j.is_object() && j.contains("containers"))
      for (const auto& c : j["containers"])
        if (c.value("name", "") == name)
          out.push_back(key.empty() ? c.value("node", "") + " " + c.value("state", "") : c.value(key, ""));
    return out;
  }

  // copiesOf(name) once it is `want`, or as it is after timeoutMs.
  std::vector<std::string> awaitCopies(const std::string& name, const std::vector<std::string>& want, int timeoutMs) {
    std::vector<std::string> copies = copiesOf(name);
    for (int t = 0; t < timeoutMs / 100 && copies != want; ++t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      copies = copiesOf(name);
    }
    return copies;
  }

  // `lxmig migrate NAME --to n2 ...` in the background; its stderr in a file.
  Child migrateInBackground(const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = tb().lxmigArgv({"migrate", name, "--to", "n2", "--mode", "stop-and-copy"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    SpawnOptions so;
    so.stderrPath = dir_ + "/migrate.err";
    auto c = spawn(argv, so);
    EXPECT_TRUE(c.ok()) << c.status().toString();
    return c.ok() ? std::move(*c) : Child();
  }
  std::string migrateErr() const { return readFile(dir_ + "/migrate.err").value_or(""); }
  // Migrates `name` to n2 in the background with its restore made to hang
  // there (await it with awaitHang()).
  Child migrateIntoAHang(const std::string& name, const std::string& restoreTimeout) {
    arm(name);
    return migrateInBackground(name, {"--restore-timeout", restoreTimeout});
  }
  // The id of the newest migration of `name` (its source's audit).
  std::string migrationOf(const std::string& name) {
    const auto j = tb().lxmig({"--json", "--node", "n1", "audit", "list"}).json();
    if (j.is_object() && j.contains("migrations"))
      for (const auto& m : j["migrations"])
        if (m.value("container", "") == name) return m.value("id", "");
    return "";
  }
  // After a rolled-back migration: one copy, running on n1 and ticking,
  // and the hung CRIU is gone.
  void expectBackOnTheSource(const std::string& name) {
    EXPECT_EQ(copiesOf(name), std::vector<std::string>{"n1 RUNNING"});
    const long before = ticks(name);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_GT(ticks(name), before) << name << " does not run";
    const long pid = hungPid();
    EXPECT_FALSE(alive(pid)) << "the hung CRIU (pid " << pid << ") is left";
  }

  std::string dir_;
};

TEST_F(WedgeTest, AHungRestoreIsKilledAtItsDeadlineAndTheNodeServesMeanwhile) {
  runTicker("c1");
  runTicker("c2");
  const auto t0 = std::chrono::steady_clock::now();
  Child m = migrateIntoAHang("c1", "15s");
  ASSERT_TRUE(awaitHang()) << migrateErr();
  // n2 answers while CRIU hangs there.
  Cli ps = tb().lxmig({"--node", "n2", "ps"}, 10000);
  EXPECT_EQ(ps.code, 0) << ps.err;
  EXPECT_NE(ps.out.find("c1"), std::string::npos) << "the incoming container is listed: " << ps.out;
  Cli audit = tb().lxmig({"--node", "n2", "audit", "list"}, 10000);
  EXPECT_EQ(audit.code, 0) << audit.err;
  // And another migration to n2 goes through meanwhile.
  Cli other = tb().lxmig({"migrate", "c2", "--to", "n2", "--mode", "stop-and-copy"});
  EXPECT_EQ(other.code, 0) << other.err;
  EXPECT_EQ(copiesOf("c2"), std::vector<std::string>{"n2 RUNNING"});
  EXPECT_GT(m.pid(), 0);
  auto rc = m.wait(120000);
  ASSERT_TRUE(rc.ok()) << "the migration did not end: " << rc.status().toString();
  EXPECT_EQ(*rc, 1);
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 60) << "a 15 s restore deadline took " << took << " s to roll back";
  EXPECT_NE(migrateErr().find("took longer than 15 s"), std::string::npos) << migrateErr();
  EXPECT_EQ(migrateErr().find("unreachable"), std::string::npos) << "the target answered: " << migrateErr();
  expectBackOnTheSource("c1");
  // Both audits say why.
  const std::string id = migrationOf("c1");
  ASSERT_FALSE(id.empty());
  auto src = tb().lxmig({"--json", "--node", "n1", "audit", "show", id}).json();
  EXPECT_EQ(src.value("result", ""), "aborted");
  EXPECT_NE(src.value("error", "").find("took longer than 15 s"), std::string::npos) << src.dump();
  auto dst = tb().lxmig({"--json", "--node", "n2", "audit", "show", id}).json();
  EXPECT_EQ(dst.value("result", ""), "aborted");
  EXPECT_NE(dst.dump().find("restore failed: restore of `c1` took longer than 15 s"), std::string::npos) << dst.dump();
}

// The source's side: a dump that hangs (as CRIU's did on a stopped task in
// the frozen cgroup) is killed at its deadline (60 s for a small
// container), and the container thaws and runs on: its tasks are never
// killed with CRIU.
TEST_F(WedgeTest, AHungDumpIsKilledAtItsDeadlineAndTheSourceThaws) {
  Cli run = tb().lxmig(std::vector<std::string>{"--node", "n2", "run", "--name", "c3", "--"} + kTicker);
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_TRUE(writeFileAtomic(dir_ + "/armed-dump", "c3").ok());
  const auto t0 = std::chrono::steady_clock::now();
  Cli m = tb().lxmig({"migrate", "c3", "--to", "n1", "--mode", "stop-and-copy"}, 240000);
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(m.code, 1) << m.out << m.err;
  EXPECT_NE(m.err.find("dump of `c3` took longer than 60 s"), std::string::npos) << m.err;
  EXPECT_LT(took, 120) << "a 60 s dump deadline took " << took << " s to roll back";
  EXPECT_GT(hungPid(), 1) << "the dump never hung";
  EXPECT_FALSE(alive(hungPid())) << "the hung CRIU (pid " << hungPid() << ") is left";
  EXPECT_EQ(copiesOf("c3"), std::vector<std::string>{"n2 RUNNING"});
  auto count = [&] {
    Cli c = tb().lxmig({"--node", "n2", "exec", "c3", "--", "cat", "/tmp/ticks"});
    return c.code == 0 ? std::atol(c.out.c_str()) : -1;
  };
  const long before = count();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_GT(count(), before) << "c3 does not run after the rollback";
}

TEST_F(WedgeTest, AnOperatorCancelsAMigrationStuckInItsRestore) {
  runTicker("c1");
  Child m = migrateIntoAHang("c1", "600s");
  ASSERT_TRUE(awaitHang()) << migrateErr();
  const std::string id = migrationOf("c1");
  ASSERT_EQ(id.size(), 16u);
  const auto t0 = std::chrono::steady_clock::now();
  Cli cancel = tb().lxmig({"cancel", id}, 60000);
  EXPECT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_NE(cancel.out.find("aborted"), std::string::npos) << cancel.out;
  auto rc = m.wait(60000);
  ASSERT_TRUE(rc.ok()) << rc.status().toString();
  EXPECT_EQ(*rc, 1);
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count(), 30);
  EXPECT_NE(migrateErr().find("cancelled by the operator"), std::string::npos) << migrateErr();
  expectBackOnTheSource("c1");
  // Cancelling again, or something that never ran, is a clear refusal.
  Cli again = tb().lxmig({"cancel", id});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already ended: aborted"), std::string::npos) << again.err;
  Cli bad = tb().lxmig({"cancel", "../etc"});
  EXPECT_EQ(bad.code, 2) << bad.err;
  Cli none = tb().lxmig({"cancel", "0123456789abcdef"});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("no node runs migration"), std::string::npos) << none.err;
}

TEST_F(WedgeTest, AnAgentRestartedDuringARestoreLeavesNothingBehind) {
  runTicker("c1");
  Child m = migrateIntoAHang("c1", "600s");
  ASSERT_TRUE(awaitHang()) << migrateErr();
  const long hung = hungPid();
  ASSERT_TRUE(tb().restartAgent("n2", {}, dir_).ok());
  auto rc = m.wait(120000);
  ASSERT_TRUE(rc.ok()) << rc.status().toString();
  EXPECT_EQ(*rc, 1);
  // The source waits for n2's word (it may have restored c1), then resumes.
  EXPECT_EQ(awaitCopies("c1", {"n1 RUNNING"}, 60000), std::vector<std::string>{"n1 RUNNING"}) << migrateErr();
  EXPECT_FALSE(alive(hung)) << "the restarted agent left the hung CRIU";
  expectBackOnTheSource("c1");
}

// n2's agent dies while it restores c1: n1 cannot learn whether c1 runs
// there, so c1 stays frozen (never two copies) until n2 answers. The
// operator may thaw it anyway, told what that risks; when n2 comes back, it
// removes its half-restored copy.
TEST_F(WedgeTest, AnOperatorThawsASourceLeftFrozenWhileTheTargetIsSilent) {
  runTicker("c1");
  Child m = migrateIntoAHang("c1", "600s");
  ASSERT_TRUE(awaitHang()) << migrateErr();
  const long hung = hungPid();
  const int pid = tb().agentPid("n2");
  ASSERT_GT(pid, 1);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto rc = m.wait(120000);
  ASSERT_TRUE(rc.ok()) << rc.status().toString();
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(migrateErr().find("left FROZEN on n1"), std::string::npos) << migrateErr();
  const std::string id = migrationOf("c1");
  ASSERT_EQ(id.size(), 16u);
  Cli refused = tb().lxmig({"--node", "n1", "cancel", id});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("lxmig cancel --force " + id), std::string::npos) << refused.err;
  EXPECT_EQ(ticks("c1"), -1) << "c1 runs although frozen";
  Cli forced = tb().lxmig({"--node", "n1", "cancel", "--force", id});
  EXPECT_EQ(forced.code, 0) << forced.err;
  EXPECT_NE(forced.err.find("two copies run"), std::string::npos) << forced.err;
  const long before = ticks("c1");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_GT(ticks("c1"), before) << "c1 does not run after cancel --force";
  auto src = tb().lxmig({"--json", "--node", "n1", "audit", "show", id}).json();
  EXPECT_NE(src.dump().find("thawed by the operator"), std::string::npos) << src.dump();
  // n2 back: its half-restored copy and the hung CRIU go; one copy runs.
  ASSERT_TRUE(tb().restartAgent("n2", {}, dir_).ok());
  EXPECT_EQ(awaitCopies("c1", {"n1 RUNNING"}, 10000), std::vector<std::string>{"n1 RUNNING"});
  EXPECT_FALSE(alive(hung)) << "n2's restarted agent left the hung CRIU";
}

// A lock on a file in a bind would make the target's restore wait for the
// frozen source: refused before anything is touched, naming file, bind,
// process and lock. The same lock on a file of the container's own
// writable area moves with it and is still held.
TEST_F(WedgeTest, ALockOnAFileInABindIsRefusedAndAPrivateOneMoves) {
  ASSERT_TRUE(makeDirs(dir_ + "/shared", 0755).ok());
  const std::string hold = "exec 9>%s; flock 9; while :; do sleep 0.1; done";
  char shared[256], priv[256];
  std::snprintf(shared, sizeof shared, hold.c_str(), "/shared/db.lock");
  std::snprintf(priv, sizeof priv, hold.c_str(), "/tmp/db.lock");
  Cli a = tb().lxmig(
      {"--node", "n1", "run", "--name", "c1", "--bind", dir_ + "/shared:/shared:rw", "--", "/bin/sh", "-c", shared});
  ASSERT_EQ(a.code, 0) << a.err;
  Cli b = tb().lxmig({"--node", "n1", "run", "--name", "c2", "--", "/bin/sh", "-c", priv});
  ASSERT_EQ(b.code, 0) << b.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // flock taken
  Cli refused = tb().lxmig({"migrate", "c1", "--to", "n2"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("refused: `/shared/db.lock` (bind of " + dir_ + "/shared) is locked by pid"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("'sh' (FLOCK WRITE)"), std::string::npos) << refused.err;
  EXPECT_EQ(copiesOf("c1"), std::vector<std::string>{"n1 RUNNING"});
  Cli moved = tb().lxmig({"migrate", "c2", "--to", "n2"});
  EXPECT_EQ(moved.code, 0) << moved.err;
  EXPECT_EQ(copiesOf("c2"), std::vector<std::string>{"n2 RUNNING"});
  Cli held = tb().lxmig({"exec", "c2", "--", "flock", "-n", "/tmp/db.lock", "true"});
  EXPECT_EQ(held.code, 1) << "the lock did not move with c2: " << held.out << held.err;
}

// A workload gets the signal mask of any process started on a host: lxmigd
// blocks SIGTERM and SIGINT in its own threads, and liblxc starts containers
// from one of them; a `kill -TERM` in the container must reach a trap.
TEST_F(WedgeTest, AWorkloadSeesSigterm) {
  Cli run = tb().lxmig({"--node", "n1", "run", "--name", "c1", "--", "/bin/sh", "-c",
                        "echo $$ >/tmp/pid; trap 'echo got >/tmp/term' TERM INT; while :; do sleep 0.1; done"});
  ASSERT_EQ(run.code, 0) << run.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Cli kill = tb().lxmig({"exec", "c1", "--", "/bin/sh", "-c", "kill -TERM $(cat /tmp/pid)"});
  ASSERT_EQ(kill.code, 0) << kill.err;
  std::string got;
  for (int t = 0; t < 50 && got.empty(); ++t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Cli c = tb().lxmig({"exec", "c1", "--", "cat", "/tmp/term"});
    if (c.code == 0) got = c.out;
  }
  EXPECT_EQ(got, "got\n") << "SIGTERM never reached the workload's trap";
}

// n1 gave 10.200.1.x to c3, which moved to n2; with n2's agent down, a new
// container of n1 must not get that address again.
TEST_F(WedgeTest, AnAddressThatLeftIsNotReusedWhileItsPeerIsUnreachable) {
  runTicker("c3");
  const auto ips = copiesOf("c3", "ip");
  ASSERT_EQ(ips.size(), 1u);
  const std::string ip = ips[0];
  Cli mv = tb().lxmig({"migrate", "c3", "--to", "n2", "--mode", "stop-and-copy"});
  ASSERT_EQ(mv.code, 0) << mv.err;
  const int pid = tb().agentPid("n2");
  ASSERT_GT(pid, 1);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  for (int t = 0; t < 100 && alive(pid); ++t) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Cli run = tb().lxmig(std::vector<std::string>{"--json", "--node", "n1", "run", "--name", "c4", "--"} + kTicker);
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.json().value("ip", ""), ip) << "n1 handed out the address c3 took to n2";
  ASSERT_TRUE(tb().restartAgent("n2", {}, dir_).ok());
  // n1's channel to n2 reconnects meanwhile.
  EXPECT_EQ(awaitCopies("c3", {"n2 RUNNING"}, 10000), std::vector<std::string>{"n2 RUNNING"});
}

}  // namespace
}  // namespace lxmig::testing
