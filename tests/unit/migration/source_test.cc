// The source side of a migration against a real Target on fake nodes: the
// commit path, and a failure in every phase rolled back with exactly one
// copy running (no LXC, CRIU or network; tests/integration has those).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>

#include "fakes.h"
#include "lxmig/base/files.h"
#include "lxmig/proto/vocabulary.h"

namespace lxmig::migration {
namespace {

using container::RunState;
using testing::FakeCluster;
using testing::FakeNode;

class SourceTest : public ::testing::Test {
 protected:
  SourceTest() : n1("n1"), n2("n2"), cluster({&n1, &n2}) { n1.addRunning("web", "10.200.1.10"); }

  v1::MigrationReport migrate(CancelledFn cancelled = {}) {
    v1::MigrateRequest req;
    req.set_container("web");
    req.set_target("n2");
    req.set_mode(v1::MODE_STOP_AND_COPY);
    Source src(testing::sourceContext(n1, cluster, [this] { ++settleRequests; }), req, {}, std::move(cancelled));
    return src.run();
  }
  std::vector<std::string> phases(const v1::MigrationReport& r) {
    std::vector<std::string> out;
    for (const auto& p : r.phases()) out.emplace_back(name(p.phase()));
    return out;
  }
  std::string auditResult(FakeNode& n, const std::string& id) {
    auto m = n.audit().getMigration(id);
    return m.ok() ? m->result : "(" + m.status().message() + ")";
  }
  // Exactly one copy of `web` runs, on `node`, and the other has none.
  void expectRunsOnlyOn(FakeNode& node) {
    FakeNode& other = &node == &n1 ? n2 : n1;
    ASSERT_NE(node.find("web"), nullptr);
    EXPECT_EQ(node.find("web")->state, RunState::kRunning);
    EXPECT_TRUE(node.find("web")->routed);
    EXPECT_FALSE(node.find("web")->blocked);
    EXPECT_EQ(other.find("web"), nullptr) << "a second copy on " << other.nodeName();
    EXPECT_FALSE(node.reservations().why("web")) << "left busy on " << node.nodeName();
    EXPECT_FALSE(other.reservations().why("web")) << "left busy on " << other.nodeName();
  }

  FakeNode n1, n2;
  FakeCluster cluster;
  int settleRequests = 0;
};

TEST_F(SourceTest, CommitMovesTheContainerWithItsFilesAndNetwork) {
  auto r = migrate();
  ASSERT_EQ(r.result(), v1::RESULT_COMMITTED) << r.error();
  expectRunsOnlyOn(n2);
  EXPECT_EQ(readFile(n2.rootfs("web") + "/var/data/state").value_or(""), "state of web\n");
  EXPECT_TRUE(n2.find("web")->rules) << "its firewall chain was imported before it ran";
  EXPECT_TRUE(n1.called("forgetNet web"));
  // The network state is taken while CRIU dumps, the UDP queues after it.
  const auto& c = n1.calls();
  const auto at = [&](const std::string& call) { return std::find(c.begin(), c.end(), call) - c.begin(); };
  EXPECT_LT(at("freeze web"), at("exportNet web"));
  EXPECT_LT(at("dump web"), at("peekQueuedDatagrams web"));
  EXPECT_LT(at("peekQueuedDatagrams web"), static_cast<long>(c.size()));
  EXPECT_GE(r.downtime_ms(), 0);
  EXPECT_EQ(phases(r), (std::vector<std::string>{"prepare", "sync", "freeze", "dump", "net-export", "transfer",
                                                 "restore", "target-net-import", "target-restore", "target-network",
                                                 "target-durable", "commit"}));
  EXPECT_EQ(auditResult(n1, r.id()), "committed");
  EXPECT_EQ(auditResult(n2, r.id()), "committed");
  EXPECT_TRUE(listDir(n1.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty()) << "images left on n1";
  EXPECT_TRUE(listDir(n2.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty()) << "images left on n2";
  EXPECT_FALSE(listDir(n1.logsRoot() + "/" + r.id()).ok()) << "logs of a committed migration kept on n1";
  EXPECT_FALSE(listDir(n2.logsRoot() + "/" + r.id()).ok()) << "logs of a committed migration kept on n2";
}

// CRIU's logs of a committed migration are kept when the agent's
// environment asks for every migration's (LXMIG_KEEP_LOGS=1); without it,
// they go with the images (CommitMovesTheContainerWithItsFilesAndNetwork).
TEST_F(SourceTest, TheLogsOfACommittedMigrationAreKeptWhenAsked) {
  ::setenv("LXMIG_KEEP_LOGS", "1", 1);  // before the migration's threads
  auto r = migrate();
  ::unsetenv("LXMIG_KEEP_LOGS");
  ASSERT_EQ(r.result(), v1::RESULT_COMMITTED) << r.error();
  // The source's log of its dump, and the target's copy of it.
  EXPECT_EQ(readFile(n1.logsRoot() + "/" + r.id() + "/dump.log").value_or(""), "dump.log of web");
  EXPECT_EQ(readFile(n2.logsRoot() + "/" + r.id() + "/dump.log").value_or(""), "dump.log of web");
  EXPECT_TRUE(listDir(n1.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty()) << "images left on n1";
  EXPECT_TRUE(listDir(n2.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty()) << "images left on n2";
}

// A source whose tmpfs cannot hold the dump writes it on disk and says so;
// with no disk directory either, stop-and-copy is refused before anything
// is touched.
TEST_F(SourceTest, ADumpTheTmpfsCannotHoldGoesToDiskOrIsRefused) {
  n1.freeBytesAt_[n1.imagesRoot()] = 4096;
  auto r = migrate();
  ASSERT_EQ(r.result(), v1::RESULT_COMMITTED) << r.error();
  const std::string said = "info: source n1: images staged on disk in " + n1.imagesDiskRoot() +
                           ": the images tmpfs has 4.0 KiB free, the container needs about 1.0 MiB";
  EXPECT_NE(std::find(r.events().begin(), r.events().end(), said), r.events().end());
  EXPECT_TRUE(listDir(n1.imagesDiskRoot()).value_or(std::vector<std::string>{"?"}).empty()) << "images left on disk";
  expectRunsOnlyOn(n2);

  n2.freeBytesAt_[n2.imagesRoot()] = 4096;
  n2.diskImages_ = false;
  v1::MigrateRequest back;
  back.set_container("web");
  back.set_target("n1");
  back.set_mode(v1::MODE_STOP_AND_COPY);
  auto refused = Source(testing::sourceContext(n2, cluster, [] {}), back, {}, {}).run();
  EXPECT_EQ(refused.result(), v1::RESULT_REFUSED) << refused.error();
  EXPECT_EQ(refused.error(),
            "source n2 has 4.0 KiB free for images in " + n2.imagesRoot() + ", the container needs about 1.0 MiB");
  expectRunsOnlyOn(n2);
}

// Connections waiting in an accept queue at the freeze: the container is
// thawed to accept them, frozen again, and the migration goes on.
TEST_F(SourceTest, ConnectionsWaitingAtTheFreezeAreAcceptedFirst) {
  n1.waiting = 2;
  auto r = migrate();
  ASSERT_EQ(r.result(), v1::RESULT_COMMITTED) << r.error();
  expectRunsOnlyOn(n2);
  const auto& c = n1.calls();
  auto at = [&](const std::string& call, size_t from) {
    return static_cast<size_t>(std::find(c.begin() + static_cast<long>(from), c.end(), call) - c.begin());
  };
  const size_t freeze = at("freeze web", 0), thaw = at("thaw web", freeze), again = at("freeze web", thaw);
  EXPECT_LT(again, c.size()) << "frozen, thawed to accept, frozen again before the dump";
  EXPECT_EQ(c[thaw - 1], "speak web") << "its answers leave while it accepts";
  EXPECT_EQ(c[again + 1], "silence web") << "and no more once it is frozen again";
  EXPECT_LT(again, at("dump web", 0));
  bool said = false;
  for (const auto& e : n1.audit().events(r.id()).value_or({}))
    said |= e.text.find("to accept 2 connection(s)") != std::string::npos;
  EXPECT_TRUE(said) << "the audit says why it thawed";
}

// A failure at each host step of the source before the restore: aborted,
// the source runs as before, the target has nothing.
TEST_F(SourceTest, FailureInEveryPhaseBeforeTheRestoreLeavesTheSourceRunning) {
  for (const char* step : {"freeze", "isolate", "dump", "exportNet", "peekQueuedDatagrams"}) {
    SCOPED_TRACE(step);
    n1.failAt = {{step, internalError(std::string("injected ") + step + " failure")}};
    auto r = migrate();
    EXPECT_EQ(r.result(), v1::RESULT_ABORTED);
    EXPECT_NE(r.error().find("injected"), std::string::npos) << r.error();
    expectRunsOnlyOn(n1);
    EXPECT_EQ(phases(r).back(), "abort");
    EXPECT_EQ(auditResult(n1, r.id()), "aborted");
    EXPECT_EQ(auditResult(n2, r.id()), "aborted");
    EXPECT_EQ(r.downtime_ms(), -1);
  }
}

TEST_F(SourceTest, FailureOnTheTargetDuringTheRestoreIsUndoneThere) {
  for (const char* step : {"installStaged", "importNet", "restore", "thaw", "claimAddress"}) {
    SCOPED_TRACE(step);
    n2.failAt = {{step, internalError(std::string("injected ") + step + " failure")}};
    auto r = migrate();
    EXPECT_EQ(r.result(), v1::RESULT_ABORTED) << r.error();
    expectRunsOnlyOn(n1);
    if (std::string(step) != "installStaged") {
      EXPECT_TRUE(n2.called("dropImportedNet web"));
    }
    EXPECT_EQ(auditResult(n2, r.id()), "aborted");
  }
}

TEST_F(SourceTest, BrokenStreamsAbort) {
  cluster.faults("n2").streamBreaks = true;
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_ABORTED);
  EXPECT_NE(r.error().find("sync"), std::string::npos) << r.error();
  expectRunsOnlyOn(n1);
  EXPECT_FALSE(n1.called("freeze web")) << "nothing was frozen for a failed sync";
}

TEST_F(SourceTest, RefusalsTouchNothing) {
  n2.missingPaths.insert("/srv/shared");
  auto* web = n1.find("web");
  web->spec.binds.push_back({"/srv/shared", "/srv/shared", true});
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("lacks bind source `/srv/shared`"), std::string::npos) << r.error();
  expectRunsOnlyOn(n1);
  EXPECT_TRUE(n1.calls().empty() || !n1.called("freeze web"));
  EXPECT_EQ(auditResult(n1, r.id()), "refused");

  web->spec.binds.clear();
  // Its processes share IPC with another container's: the group moves whole.
  n1.failAt = {{"checkMovesAlone", failedPrecondition("`web` shares IPC with container db")}};
  r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("shares IPC with container db"), std::string::npos) << r.error();
  EXPECT_FALSE(n1.called("freeze web"));
  EXPECT_EQ(n1.reservations().why("web"), std::nullopt) << "nothing stays reserved";
  n1.failAt.clear();

  n2.addRunning("web", "10.200.2.10");  // the name is taken there
  r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("already holds a container named `web`"), std::string::npos) << r.error();
  EXPECT_EQ(n1.find("web")->state, RunState::kRunning);
}

TEST_F(SourceTest, RefusalsOfTheRequest) {
  v1::MigrateRequest req;
  req.set_container("nosuch");
  req.set_target("n2");
  auto r = Source(testing::sourceContext(n1, cluster), req, {}, {}).run();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  req.set_container("web");
  req.set_target("n1");
  r = Source(testing::sourceContext(n1, cluster), req, {}, {}).run();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("already runs on n1"), std::string::npos) << r.error();
  req.set_target("n9");
  r = Source(testing::sourceContext(n1, cluster), req, {}, {}).run();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  expectRunsOnlyOn(n1);
}

TEST_F(SourceTest, BusyContainerIsRefused) {
  auto busy = n1.reservations().reserve("web", "being removed");
  ASSERT_TRUE(busy.ok());
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("busy: being removed"), std::string::npos) << r.error();
  EXPECT_EQ(cluster.faults("n2").prepareCalls, 0);
}

// The operator's Ctrl-C after the n-th check: every stage before the
// restore ends aborted (or refused before PREPARE), never half-done.
TEST_F(SourceTest, CancelAtAnyPointBeforeTheRestoreRollsBack) {
  for (int after = 0; after < 40; ++after) {
    SCOPED_TRACE(after);
    std::atomic<int> checks{0};
    auto r = migrate([&] { return checks++ >= after; });
    if (r.result() == v1::RESULT_COMMITTED) break;  // cancelled after the restore: too late, and right
    EXPECT_TRUE(r.result() == v1::RESULT_ABORTED || r.result() == v1::RESULT_REFUSED) << name(r.result());
    EXPECT_NE(r.error().find("cancelled by the operator"), std::string::npos) << r.error();
    expectRunsOnlyOn(n1);
  }
}

// The restore happened but its answer was lost and the abort cannot be
// confirmed: the source stays frozen (the target may run it) and asks to
// be settled later; never two running copies.
TEST_F(SourceTest, UnconfirmedAbortAfterTheRestoreLeavesTheSourceFrozen) {
  cluster.faults("n2").restoreTimesOut = true;
  cluster.faults("n2").abortFails = true;
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_FAILED);
  EXPECT_NE(r.error().find("left FROZEN on n1"), std::string::npos) << r.error();
  EXPECT_EQ(n1.find("web")->state, RunState::kFrozen);
  EXPECT_TRUE(n1.find("web")->blocked);
  EXPECT_EQ(settleRequests, 1);
  EXPECT_EQ(cluster.faults("n2").abortCalls, 5) << "asked again before giving up";
  EXPECT_FALSE(n1.reservations().why("web")) << "the settler must be able to take it";
  EXPECT_EQ(auditResult(n1, r.id()), "failed");
}

// The target answers the restore once the container runs there and makes
// its writable area durable at COMMIT: the source's copy goes only once
// COMMIT answered; unanswered, it stays frozen and is settled later.
TEST_F(SourceTest, TheSourcesCopyGoesOnlyOnceTheTargetConfirmedItsDisk) {
  auto r = migrate();
  ASSERT_EQ(r.result(), v1::RESULT_COMMITTED) << r.error();
  EXPECT_EQ(cluster.faults("n2").commitCalls, 1);
  const auto& c = n1.calls();
  const auto at = [&](const std::string& call) { return std::find(c.begin(), c.end(), call) - c.begin(); };
  EXPECT_LT(at("forward web n2"), at("destroy web"))
      << "what waited during the frozen window goes on before the target's disk is synced";
  EXPECT_LT(at("destroy web"), static_cast<long>(c.size()));
  const std::vector<std::string> names = phases(r);
  EXPECT_EQ(std::count(names.begin(), names.end(), "target-durable"), 1);
}

TEST_F(SourceTest, AnUnconfirmedCommitLeavesTheSourcesCopyFrozenForTheSettler) {
  cluster.faults("n2").commitFails = true;
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_COMMITTED) << "it runs on n2: " << r.error();
  EXPECT_EQ(n2.find("web")->state, RunState::kRunning);
  ASSERT_NE(n1.find("web"), nullptr) << "kept until n2 confirms its copy on disk";
  EXPECT_EQ(n1.find("web")->state, RunState::kFrozen);
  EXPECT_FALSE(n1.called("destroy web"));
  EXPECT_EQ(settleRequests, 1);
  EXPECT_FALSE(n1.reservations().why("web")) << "the settler must be able to take it";
}

// A confirmed abort after the restore: the target destroys its copy, the
// source thaws.
TEST_F(SourceTest, ConfirmedAbortAfterTheRestoreThawsTheSource) {
  cluster.faults("n2").restoreTimesOut = true;
  auto r = migrate();
  EXPECT_EQ(r.result(), v1::RESULT_ABORTED);
  expectRunsOnlyOn(n1);
  EXPECT_TRUE(n2.called("destroy web"));
}

TEST_F(SourceTest, WaitsForTheMemoryOfThePreviousMigration) {
  n1.fill = node::Node::MemoryFill{"0123456789abcdef", 4242};
  std::atomic<int> checks{0};
  auto r = migrate([&] { return checks++ >= 3; });  // the operator gives up while it waits
  EXPECT_EQ(r.result(), v1::RESULT_REFUSED);
  EXPECT_NE(r.error().find("cancelled by the operator"), std::string::npos) << r.error();
  EXPECT_EQ(phases(r), std::vector<std::string>{"await-memory"});
  expectRunsOnlyOn(n1);
}

}  // namespace
}  // namespace lxmig::migration
