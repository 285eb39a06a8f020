// Settling frozen copies (settle.h) on fake nodes: each way a migration can
// have ended on its target, and the peers that cannot say.
#include <gtest/gtest.h>

#include "fakes.h"
#include "lxmig/proto/vocabulary.h"

namespace lxmig::migration {
namespace {

using container::RunState;
using testing::FakeCluster;
using testing::FakeNode;

class SettleTest : public ::testing::Test {
 protected:
  SettleTest()
      : n1("n1"), n2("n2"), n3("n3"), cluster({&n1, &n2, &n3}), frozen(n1, cluster, n1.audit(), n1.reservations()) {}

  // Migrates web from n1 to n2 with the faults set up before, which leave it
  // frozen on n1 (the abort is not confirmed); clears the faults.
  std::string leaveFrozen() {
    v1::MigrateRequest req;
    req.set_container("web");
    req.set_target("n2");
    req.set_mode(v1::MODE_STOP_AND_COPY);
    auto r = Source(testing::sourceContext(n1, cluster), req, {}, {}).run();
    EXPECT_EQ(r.result(), v1::RESULT_FAILED) << r.error();
    cluster.faults("n2") = {};
    return r.id();
  }
  // web frozen on n1 by a migration to n2 whose restore answer was lost.
  std::string freezeByLostRestore() {
    n1.addRunning("web", "10.200.1.10");
    cluster.faults("n2").restoreTimesOut = true;
    cluster.faults("n2").abortFails = true;
    return leaveFrozen();
  }
  bool hasEvent(const std::string& id, const std::string& text) {
    auto ev = n1.audit().events(id);
    if (!ev.ok()) return false;
    for (const auto& e : *ev)
      if (e.text.find(text) != std::string::npos) return true;
    return false;
  }

  FakeNode n1, n2, n3;
  FakeCluster cluster;
  FrozenCopies frozen;
};

TEST_F(SettleTest, RestoredOnTheTargetItIsCommittedThereAndGoesHere) {
  const std::string id = freezeByLostRestore();
  ASSERT_EQ(n2.find("web")->state, RunState::kRunning);
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n1.find("web"), nullptr) << "the frozen copy is removed";
  EXPECT_TRUE(n1.called("forgetNet web"));
  EXPECT_EQ(n2.find("web")->state, RunState::kRunning);
  EXPECT_EQ(n2.audit().getMigration(id)->result, "committed");
  EXPECT_TRUE(hasEvent(id, "where it is committed, removed"));
}

TEST_F(SettleTest, PreparedButNotRestoredItIsAbortedThereAndThawedHere) {
  n1.addRunning("web", "10.200.1.10");
  n2.failAt = {{"restore", internalError("CRIU restore failed")}};
  cluster.faults("n2").abortFails = true;  // the source cannot confirm its abort
  const std::string id = leaveFrozen();
  // The target's failed restore undid its steps but holds the migration
  // until it is aborted: COMMIT there is refused (not restored), ABORT goes
  // through, n1 thaws.
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n2.audit().getMigration(id)->result, "aborted");
  ASSERT_NE(n1.find("web"), nullptr);
  EXPECT_EQ(n1.find("web")->state, RunState::kRunning);
  EXPECT_TRUE(n1.find("web")->routed);
  EXPECT_FALSE(n1.find("web")->blocked);
  EXPECT_EQ(n2.find("web"), nullptr);
}

TEST_F(SettleTest, UnreachableTargetLeavesItFrozenUntilItAnswers) {
  const std::string id = freezeByLostRestore();
  cluster.faults("n2").unreachable = true;
  EXPECT_EQ(frozen.settle(), 1);
  EXPECT_EQ(frozen.settle(), 1);
  EXPECT_EQ(n1.find("web")->state, RunState::kFrozen) << "never thawed while the target may run it";
  cluster.faults("n2").unreachable = false;
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n1.find("web"), nullptr);
}

TEST_F(SettleTest, NoTraceOnTheTargetAPeerRunningItOwnsIt) {
  n1.addRunning("web", "10.200.1.10");
  ASSERT_TRUE(n1.freeze("web").ok());
  n3.addRunning("web", "10.200.1.10");  // e.g. moved on from n2 to n3 meanwhile
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n1.find("web"), nullptr);
}

TEST_F(SettleTest, NoTraceAnywhereItThaws) {
  n1.addRunning("web", "10.200.1.10");
  ASSERT_TRUE(n1.freeze("web").ok());
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n1.find("web")->state, RunState::kRunning);
}

TEST_F(SettleTest, NoTraceButAPeerUnreachableItWaits) {
  n1.addRunning("web", "10.200.1.10");
  ASSERT_TRUE(n1.freeze("web").ok());
  cluster.faults("n3").unreachable = true;
  EXPECT_EQ(frozen.settle(), 1);
  EXPECT_EQ(n1.find("web")->state, RunState::kFrozen);
}

TEST_F(SettleTest, AContainerBeingMigratedIsLeftToItsMigration) {
  n1.addRunning("web", "10.200.1.10");
  ASSERT_TRUE(n1.freeze("web").ok());
  auto busy = n1.reservations().reserve("web", "migrating to n2", node::ReservationKind::kMigratingOut);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(frozen.settle(), 0);
  EXPECT_EQ(n1.find("web")->state, RunState::kFrozen);
  EXPECT_FALSE(n1.called("thaw web"));
}

}  // namespace
}  // namespace lxmig::migration
