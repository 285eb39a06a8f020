// The target side (target.h) on a fake node: PREPARE's refusals, what
// COMMIT and ABORT accept, and a source that goes silent.
#include <gtest/gtest.h>

#include "fakes.h"
#include "lxmig/base/files.h"

namespace lxmig::migration {
namespace {

using container::RunState;
using testing::FakeNode;

class TargetTest : public ::testing::Test {
 protected:
  TargetTest() : n2("n2") {}
  v1::PrepareRequest request(const std::string& id, const std::string& name, const std::string& ip) {
    v1::PrepareRequest pr;
    pr.set_migration_id(id);
    pr.set_source("n1");
    pr.mutable_spec()->set_name(name);
    pr.mutable_spec()->set_ip(ip);
    return pr;
  }
  // Sends a minimal image set and restores: the container runs here.
  void restoreHere(const std::string& id) {
    std::vector<v1::TransferChunk> chunks;
    for (const char* f : {"inventory.img", "pstree.img"}) {
      v1::TransferChunk c;
      c.set_migration_id(id);
      c.set_area(v1::TransferChunk::IMAGES);
      c.set_path(f);
      c.mutable_meta()->set_type(v1::FileMeta::REGULAR);
      c.mutable_meta()->set_mode(0600);
      chunks.push_back(c);
    }
    size_t i = 0;
    auto r = n2.target().receive(
        [&](v1::TransferChunk& c) -> Result<bool> {
          if (i == chunks.size()) return false;
          c = chunks[i++];
          return true;
        },
        false);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    auto rr = n2.target().restore(id, false, {});
    ASSERT_TRUE(rr.ok()) << rr.status().toString();
  }
  FakeNode n2;
};

TEST_F(TargetTest, PrepareRefusesWhatCannotWork) {
  n2.addRunning("db", "10.200.2.10");
  auto st = n2.target().prepare(request("0000000000000001", "db", "10.200.1.5"));
  EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.toString();
  st = n2.target().prepare(request("0000000000000002", "web", "10.200.2.10"));
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.toString();
  EXPECT_NE(st.message().find("address 10.200.2.10 is used by `db`"), std::string::npos);
  n2.freeBytes_ = 1000;
  auto pr = request("0000000000000003", "web", "10.200.1.10");
  pr.set_memory_bytes(1 << 20);
  st = n2.target().prepare(pr);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_EQ(n2.target().prepare(request("a/b", "web", "10.200.1.10")).code(), Code::kInvalidArgument);
  EXPECT_FALSE(n2.reservations().why("web")) << "a refusal reserves nothing";
}

TEST_F(TargetTest, PrepareTwiceAndBusyNames) {
  ASSERT_TRUE(n2.target().prepare(request("0000000000000001", "web", "10.200.1.10")).ok());
  EXPECT_EQ(n2.target().prepare(request("0000000000000001", "web", "10.200.1.10")).code(), Code::kAlreadyExists);
  auto st = n2.target().prepare(request("0000000000000002", "web", "10.200.1.11"));
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("busy: migrating in from n1"), std::string::npos) << st.toString();
}

TEST_F(TargetTest, CommitNeedsARestoreAndAbortIsIdempotent) {
  ASSERT_TRUE(n2.target().prepare(request("0000000000000001", "web", "10.200.1.10")).ok());
  EXPECT_EQ(n2.target().commit("0000000000000001").code(), Code::kFailedPrecondition);
  EXPECT_EQ(n2.target().commit("ffffffffffffffff").code(), Code::kNotFound);
  EXPECT_TRUE(n2.target().abort("0000000000000001", "operator").ok());
  EXPECT_TRUE(n2.target().abort("0000000000000001", "again").ok());
  EXPECT_TRUE(n2.target().abort("never-prepared", "x").ok());
  EXPECT_FALSE(n2.reservations().why("web"));
  EXPECT_TRUE(listDir(n2.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty());
}

TEST_F(TargetTest, AbortAfterTheRestoreDestroysTheCopyHere) {
  ASSERT_TRUE(n2.target().prepare(request("0000000000000001", "web", "10.200.1.10")).ok());
  restoreHere("0000000000000001");
  ASSERT_EQ(n2.find("web")->state, RunState::kRunning);
  EXPECT_TRUE(n2.target().abort("0000000000000001", "source says so").ok());
  EXPECT_EQ(n2.find("web"), nullptr);
  EXPECT_TRUE(n2.called("dropImportedNet web"));
}

TEST_F(TargetTest, SilentSourceAbortsBeforeTheRestoreAndCommitsAfterIt) {
  ASSERT_TRUE(n2.target().prepare(request("0000000000000001", "web", "10.200.1.10")).ok());
  ASSERT_TRUE(n2.target().prepare(request("0000000000000002", "db", "10.200.1.11")).ok());
  restoreHere("0000000000000002");
  n2.target().reapIdle(60000);  // not silent long enough: nothing happens
  EXPECT_TRUE(n2.reservations().why("web"));
  n2.target().reapIdle(-1);
  EXPECT_FALSE(n2.reservations().why("web"));
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "aborted");
  EXPECT_EQ(n2.audit().getMigration("0000000000000002")->result, "committed");
  ASSERT_NE(n2.find("db"), nullptr);
  EXPECT_EQ(n2.find("db")->state, RunState::kRunning) << "the restored copy is this node's now";
}

TEST_F(TargetTest, CleanupStaleRemovesLeftoversOnly) {
  ASSERT_TRUE(makeDirs(n2.stagingRoot() + "/.incoming-0000000000000009/rootfs").ok());
  ASSERT_TRUE(makeDirs(n2.imagesRoot() + "/0000000000000009").ok());
  n2.addRunning("web", "10.200.1.10");
  n2.target().cleanupStale();
  EXPECT_FALSE(pathExists(n2.stagingRoot() + "/.incoming-0000000000000009"));
  EXPECT_FALSE(pathExists(n2.imagesRoot() + "/0000000000000009"));
  EXPECT_TRUE(pathExists(n2.rootfs("web") + "/var/data/state"));
}

}  // namespace
}  // namespace lxmig::migration
