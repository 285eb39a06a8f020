// The target side (target.h) on a fake node: PREPARE's refusals, what
// COMMIT and ABORT accept, and a source that goes silent.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

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
    sendImages(id);
    auto rr = n2.target().restore("n1", id, false, {});
    ASSERT_TRUE(rr.ok()) << rr.status().toString();
  }
  void sendImages(const std::string& id) {
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
        "n1",
        [&](v1::TransferChunk& c) -> Result<bool> {
          if (i == chunks.size()) return false;
          c = chunks[i++];
          return true;
        },
        false);
    ASSERT_TRUE(r.ok()) << r.status().toString();
  }
  bool audited(const std::string& id, const std::string& text) {
    auto ev = n2.audit().events(id);
    if (!ev.ok()) return false;
    return std::any_of(ev->begin(), ev->end(), [&](const auto& e) { return e.text.find(text) != std::string::npos; });
  }
  FakeNode n2;
};

TEST_F(TargetTest, PrepareRefusesWhatCannotWork) {
  n2.addRunning("db", "10.200.2.10");
  auto st = n2.target().prepare("n1", request("0000000000000001", "db", "10.200.1.5"));
  EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.toString();
  st = n2.target().prepare("n1", request("0000000000000002", "web", "10.200.2.10"));
  EXPECT_EQ(st.code(), Code::kFailedPrecondition) << st.toString();
  EXPECT_NE(st.message().find("address 10.200.2.10 is used by `db`"), std::string::npos);
  n2.freeBytes_ = 1000;
  auto pr = request("0000000000000003", "web", "10.200.1.10");
  pr.set_memory_bytes(1 << 20);
  st = n2.target().prepare("n1", pr);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_EQ(n2.target().prepare("n1", request("a/b", "web", "10.200.1.10")).code(), Code::kInvalidArgument);
  EXPECT_FALSE(n2.reservations().why("web")) << "a refusal reserves nothing";
}

TEST_F(TargetTest, ImagesGoToDiskWhenTheTmpfsIsShortAndAreRefusedWhenNeitherHoldsThem) {
  n2.freeBytesAt_[n2.imagesRoot()] = 1 << 20;
  auto pr = request("0000000000000004", "web", "10.200.1.10");
  pr.set_memory_bytes(64 << 20);
  v1::PrepareReply rep;
  ASSERT_TRUE(n2.target().prepare("n1", pr, &rep).ok());
  EXPECT_NE(rep.images_staging().find("images staged on disk in " + n2.imagesDiskRoot()), std::string::npos)
      << rep.images_staging();
  EXPECT_NE(rep.images_staging().find("1.0 MiB free"), std::string::npos) << rep.images_staging();
  EXPECT_TRUE(pathExists(n2.imagesDiskRoot() + "/0000000000000004"));
  EXPECT_FALSE(pathExists(n2.imagesRoot() + "/0000000000000004"));
  EXPECT_TRUE(audited("0000000000000004", "images staged on disk"));
  ASSERT_TRUE(n2.target().abort("n1", "0000000000000004", "test").ok());
  EXPECT_FALSE(pathExists(n2.imagesDiskRoot() + "/0000000000000004")) << "an abort removes the disk's images";

  // The disk shares its filesystem with the writable area: both must fit.
  n2.freeBytesAt_[n2.imagesDiskRoot()] = 80 << 20;
  pr.set_migration_id("0000000000000005");
  pr.set_expected_bytes(32 << 20);
  auto st = n2.target().prepare("n1", pr);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_NE(
      st.message().find("1.0 MiB free for images in " + n2.imagesRoot() + " and 80.0 MiB in " + n2.imagesDiskRoot() +
                        " (shared with the writable area), the container needs about "
                        "64.0 MiB"),
      std::string::npos)
      << st.toString();

  // No disk directory (images_disk_dir = "off"): the tmpfs alone decides.
  n2.diskImages_ = false;
  pr.set_migration_id("0000000000000006");
  st = n2.target().prepare("n1", pr);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_EQ(st.message().find(" and "), std::string::npos) << st.toString();
  EXPECT_FALSE(n2.reservations().why("web")) << "a refusal reserves nothing";
}

TEST_F(TargetTest, AContainerThatGrewGetsMoreRoomOrIsRefusedWithTheSizes) {
  auto pr = request("0000000000000007", "web", "10.200.1.10");
  pr.set_memory_bytes(64 << 20);
  ASSERT_TRUE(n2.target().prepare("n1", pr).ok());
  v1::ReserveRequest rr;
  rr.set_migration_id("0000000000000007");
  rr.set_memory_bytes(32 << 20);
  EXPECT_TRUE(n2.target().reserve("n1", rr).ok()) << "less than reserved: nothing to do";
  EXPECT_EQ(n2.target().reserve("n3", rr).code(), Code::kPermissionDenied) << "another node's migration";
  rr.set_memory_bytes(256 << 20);
  ASSERT_TRUE(n2.target().reserve("n1", rr).ok());
  EXPECT_TRUE(audited("0000000000000007", "the container grew to about 256.0 MiB: room reserved in " + n2.imagesRoot() +
                                              " (was 64.0 MiB)"));
  // The budget grew with it: a file of 300 MiB (more than 4x the 64 MiB
  // announced at PREPARE) is taken.
  v1::TransferChunk c;
  c.set_migration_id("0000000000000007");
  c.set_area(v1::TransferChunk::IMAGES);
  c.set_path("big.img");
  c.mutable_meta()->set_size(300 << 20);
  bool first = true;
  auto one = [&](v1::TransferChunk& out) -> Result<bool> {
    if (!first) return false;
    first = false;
    out = c;
    return true;
  };
  auto got = n2.target().receive("n1", one, true);
  EXPECT_TRUE(got.ok()) << got.status().toString();

  n2.freeBytesAt_[n2.imagesRoot()] = 100 << 20;
  rr.set_memory_bytes(512 << 20);
  auto st = n2.target().reserve("n1", rr);
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.toString();
  EXPECT_EQ(st.message(), "target n2 has 100.0 MiB free for images in " + n2.imagesRoot() +
                              ", the container grew to about 512.0 MiB (256.0 MiB reserved)");
  ASSERT_TRUE(n2.target().abort("n1", "0000000000000007", "test").ok());
}

TEST_F(TargetTest, DevShmFilesAreTakenOnlyIntoAPreparedTmpfsAndUnknownAreasNot) {
  // The fake node prepares no /dev/shm: files for it are refused, not
  // written anywhere else (the writable area, the images).
  auto pr = request("0000000000000008", "web", "10.200.1.10");
  pr.set_dev_shm_standard(true);
  v1::PrepareReply rep;
  ASSERT_TRUE(n2.target().prepare("n1", pr, &rep).ok());
  EXPECT_FALSE(rep.dev_shm_prepared());
  EXPECT_FALSE(rep.dev_shm_takes_files());
  auto sendOne = [&](v1::TransferChunk::Area area) {
    v1::TransferChunk c;
    c.set_migration_id("0000000000000008");
    c.set_area(area);
    c.set_path("PostgreSQL.1");
    c.mutable_meta()->set_type(v1::FileMeta::REGULAR);
    c.mutable_meta()->set_mode(0600);
    bool first = true;
    return n2.target().receive(
        "n1",
        [&](v1::TransferChunk& out) -> Result<bool> {
          if (!first) return false;
          first = false;
          out = c;
          return true;
        },
        false);
  };
  auto got = sendOne(v1::TransferChunk::DEV_SHM);
  EXPECT_EQ(got.status().code(), Code::kFailedPrecondition) << got.status().toString();
  EXPECT_NE(got.status().message().find("no /dev/shm was prepared for migration 0000000000000008"), std::string::npos)
      << got.status().toString();
  got = sendOne(static_cast<v1::TransferChunk::Area>(7));
  EXPECT_EQ(got.status().code(), Code::kInvalidArgument) << got.status().toString();
  EXPECT_NE(got.status().message().find("chunk of an unknown area 7"), std::string::npos) << got.status().toString();
  EXPECT_FALSE(pathExists(n2.imagesRoot() + "/0000000000000008/PostgreSQL.1"));
  ASSERT_TRUE(n2.target().abort("n1", "0000000000000008", "test").ok());
}

TEST_F(TargetTest, PrepareTwiceAndBusyNames) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  EXPECT_EQ(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).code(), Code::kAlreadyExists);
  auto st = n2.target().prepare("n1", request("0000000000000002", "web", "10.200.1.11"));
  EXPECT_EQ(st.code(), Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("busy: migrating in from n1"), std::string::npos) << st.toString();
}

TEST_F(TargetTest, ANetworkNamespaceIsLaidOutOnlyWithTheContainersOwnMacAndAddresses) {
  // A layout a peer sends reaches the node only with the MAC and the
  // addresses of the spec PREPARE checked: the namespace's host end goes
  // onto the bridge at the restore.
  auto layout = [](v1::PrepareRequest& pr, const std::string& mac, const std::string& ip) {
    pr.mutable_spec()->set_hwaddr("02:4c:4d:c8:01:0a");
    v1::NetnsLayout* l = pr.mutable_netns();
    l->set_hwaddr(mac);
    l->set_mtu(1500);
    l->set_gateway("10.200.0.1");
    v1::NetnsAddress* a = l->add_addresses();
    a->set_ip(ip);
    a->set_prefix_len(16);
    a->set_broadcast("0.0.255.255");
  };
  auto foreign = request("0000000000000001", "web", "10.200.1.10");
  layout(foreign, "02:4c:4d:c8:01:0a", "10.200.2.99");
  v1::PrepareReply reply;
  ASSERT_TRUE(n2.target().prepare("n1", foreign, &reply).ok()) << "without a namespace, CRIU's images carry it";
  EXPECT_TRUE(n2.preparedLayouts.empty());
  EXPECT_EQ(reply.netns_shape(), "");
  EXPECT_NE(reply.netns_not_prepared().find("address `10.200.2.99` is not one of the container's"), std::string::npos)
      << reply.netns_not_prepared();
  auto otherMac = request("0000000000000002", "db", "10.200.1.11");
  layout(otherMac, "02:00:00:00:00:01", "10.200.1.11");
  ASSERT_TRUE(n2.target().prepare("n1", otherMac, &reply).ok());
  EXPECT_TRUE(n2.preparedLayouts.empty());
  // A restore cannot ask for a namespace that was not made.
  sendImages("0000000000000001");
  auto rr = n2.target().restore("n1", "0000000000000001", false, {}, 0, {.netns = true});
  EXPECT_EQ(rr.status().code(), Code::kFailedPrecondition) << rr.status().toString();
  EXPECT_NE(rr.status().message().find("no network namespace was prepared for `web`"), std::string::npos);

  auto own = request("0000000000000003", "app", "10.200.1.12");
  layout(own, "02:4c:4d:c8:01:0a", "10.200.1.12");
  ASSERT_TRUE(n2.target().prepare("n1", own, &reply).ok());
  ASSERT_EQ(n2.preparedLayouts.size(), 1u);
  const net::NetnsLayout& l = n2.preparedLayouts[0];
  EXPECT_EQ(l.hostVeth, "lxm000000000000") << "named after the migration";
  EXPECT_EQ(l.hwaddr, "02:4c:4d:c8:01:0a");
  ASSERT_EQ(l.addresses.size(), 1u);
  EXPECT_EQ(l.addresses[0].ip, "10.200.1.12");
  EXPECT_EQ(l.addresses[0].broadcast, "0.0.255.255");
  EXPECT_EQ(l.gateway, "10.200.0.1");
  EXPECT_EQ(reply.netns_shape(), "") << "the fake makes none: the source dumps the namespace";
}

TEST_F(TargetTest, CommitNeedsARestoreAndAbortIsIdempotent) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  EXPECT_EQ(n2.target().commit("n1", "0000000000000001").code(), Code::kFailedPrecondition);
  EXPECT_EQ(n2.target().commit("n1", "ffffffffffffffff").code(), Code::kNotFound);
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000001", "operator").ok());
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000001", "again").ok());
  EXPECT_TRUE(n2.target().abort("n1", "never-prepared", "x").ok());
  EXPECT_FALSE(n2.reservations().why("web"));
  EXPECT_TRUE(listDir(n2.imagesRoot()).value_or(std::vector<std::string>{"?"}).empty());
}

// Asked to, the restore answers once the container runs and COMMIT makes
// its writable area durable before answering: a COMMIT that cannot is an
// error, and the migration stays until one can.
TEST_F(TargetTest, DurableAtCommitSyncsBeforeCommitAnswers) {
  const std::string id = "0000000000000001";
  ASSERT_TRUE(n2.target().prepare("n1", request(id, "web", "10.200.1.10")).ok());
  sendImages(id);
  auto rr = n2.target().restore("n1", id, false, {}, 0, {.durableAtCommit = true});
  ASSERT_TRUE(rr.ok()) << rr.status().toString();
  EXPECT_TRUE(rr->durable_at_commit());
  EXPECT_EQ(rr->durable_ms(), 0);
  ASSERT_EQ(n2.find("web")->state, RunState::kRunning);
  const std::string root = n2.rootfs("web"), aside = root + ".aside";
  ASSERT_EQ(::rename(root.c_str(), aside.c_str()), 0);
  Status c = n2.target().commit("n1", id);
  EXPECT_FALSE(c.ok()) << "a writable area that cannot be synced is no commit";
  ASSERT_EQ(::rename(aside.c_str(), root.c_str()), 0);
  EXPECT_TRUE(n2.target().commit("n1", id).ok());
  EXPECT_TRUE(n2.target().commit("n1", id).ok()) << "again: committed";
}

TEST_F(TargetTest, AbortAfterTheRestoreDestroysTheCopyHere) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  restoreHere("0000000000000001");
  ASSERT_EQ(n2.find("web")->state, RunState::kRunning);
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000001", "source says so").ok());
  EXPECT_EQ(n2.find("web"), nullptr);
  EXPECT_TRUE(n2.called("dropImportedNet web"));
}

TEST_F(TargetTest, SilentSourceAbortsBeforeTheRestoreAndCommitsAfterIt) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000002", "db", "10.200.1.11")).ok());
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

TEST_F(TargetTest, OnlyTheSourceActsInItsMigration) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  EXPECT_EQ(n2.target().commit("n3", "0000000000000001").code(), Code::kPermissionDenied);
  EXPECT_EQ(n2.target().abort("n3", "0000000000000001", "x").code(), Code::kPermissionDenied);
  EXPECT_EQ(n2.target().restore("n3", "0000000000000001", false, {}).status().code(), Code::kPermissionDenied);
  v1::PrelayoutRequest pl;
  pl.set_migration_id("0000000000000001");
  EXPECT_EQ(n2.target().prelayout("n3", pl).code(), Code::kPermissionDenied);
  // A PREPARE that names another source than its caller.
  auto pr = request("0000000000000002", "db", "10.200.1.11");
  pr.set_source("n3");
  EXPECT_EQ(n2.target().prepare("n1", pr).code(), Code::kPermissionDenied);
  EXPECT_TRUE(n2.reservations().why("web")) << "n3's calls changed nothing";
}

TEST_F(TargetTest, PrelayoutRangesAreBounded) {
  auto pr = request("0000000000000001", "web", "10.200.1.10");
  pr.set_memory_bytes(1 << 20);
  ASSERT_TRUE(n2.target().prepare("n1", pr).ok());
  auto prelayout = [&](uint64_t a, uint64_t b) {
    v1::PrelayoutRequest pl;
    pl.set_migration_id("0000000000000001");
    auto* p = pl.add_procs();
    p->set_vpid(1);
    p->add_ranges(a);
    p->add_ranges(b);
    return n2.target().prelayout("n1", pl);
  };
  EXPECT_EQ(prelayout(0x2000, 0x1000).code(), Code::kInvalidArgument);
  EXPECT_EQ(prelayout(0x1001, 0x3000).code(), Code::kInvalidArgument);
  EXPECT_EQ(prelayout(0, uint64_t{1} << 62).code(), Code::kInvalidArgument);
  EXPECT_EQ(prelayout(0, uint64_t{1} << 47).code(), Code::kResourceExhausted) << "more than the budget";
}

TEST_F(TargetTest, TooManyIncomingMigrationsAreRefused) {
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(n2.target()
                    .prepare("n1", request("000000000000000" + std::to_string(i), "c" + std::to_string(i),
                                           "10.200.1." + std::to_string(10 + i)))
                    .ok());
  EXPECT_EQ(n2.target().prepare("n1", request("0000000000000009", "c9", "10.200.1.19")).code(),
            Code::kResourceExhausted);
}

// After an agent restart the target holds nothing in memory; COMMIT and
// ABORT answer from the audit, so a source never thaws while a copy runs
// here.
TEST_F(TargetTest, AfterARestartCommitAndAbortAnswerFromTheAudit) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  restoreHere("0000000000000001");
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000002", "db", "10.200.1.11")).ok());
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000003", "cache", "10.200.1.12")).ok());
  ASSERT_TRUE(n2.target().abort("n1", "0000000000000003", "source gave up").ok());
  n2.restartAgent();
  // Restored before the restart: runs here, only a commit settles it.
  EXPECT_EQ(n2.target().abort("n1", "0000000000000001", "source wants it back").code(), Code::kFailedPrecondition);
  EXPECT_TRUE(n2.target().commit("n1", "0000000000000001").ok());
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "committed");
  EXPECT_TRUE(n2.target().commit("n1", "0000000000000001").ok()) << "committed stays committed";
  EXPECT_EQ(n2.target().abort("n1", "0000000000000001", "x").code(), Code::kFailedPrecondition);
  // Prepared, never restored: abort is fine, commit is not.
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000002", "x").ok());
  EXPECT_EQ(n2.target().commit("n1", "0000000000000002").code(), Code::kFailedPrecondition);
  // Aborted before: stays aborted.
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000003", "x").ok());
  EXPECT_EQ(n2.target().commit("n1", "0000000000000003").code(), Code::kFailedPrecondition);
  // Never here.
  EXPECT_EQ(n2.target().commit("n1", "00000000000000ff").code(), Code::kNotFound);
  EXPECT_TRUE(n2.target().abort("n1", "00000000000000ff", "x").ok());
}

// The reaper runs while a restore is under way: it must not take that for
// silence (it would destroy the container the restore just started).
TEST_F(TargetTest, TheReaperLeavesARestoreInProgressAlone) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  n2.duringRestore = [&] { std::thread([&] { n2.target().reapIdle(-1); }).join(); };
  restoreHere("0000000000000001");
  n2.duringRestore = {};
  ASSERT_NE(n2.find("web"), nullptr);
  EXPECT_EQ(n2.find("web")->state, RunState::kRunning);
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "running");
  n2.target().reapIdle(-1);  // silent after its restore: committed, not destroyed
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "committed");
  EXPECT_EQ(n2.find("web")->state, RunState::kRunning);
}

// A restore that hangs (CRIU blocked) is killed at the deadline the source
// gave: the target answers, takes its copy away and says why.
TEST_F(TargetTest, AHungRestoreIsKilledAtItsDeadline) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  sendImages("0000000000000001");
  n2.restoreHangs = true;
  const int64_t t0 = monotonicNs();
  auto r = n2.target().restore("n1", "0000000000000001", false, {}, 1000);
  EXPECT_EQ(r.status().code(), Code::kAborted) << r.status().toString();
  EXPECT_LT((monotonicNs() - t0) / 1000000, 5000);
  EXPECT_EQ(n2.find("web"), nullptr);
  EXPECT_TRUE(audited("0000000000000001", "restore failed")) << "the audit says why";
  EXPECT_TRUE(n2.target().abort("n1", "0000000000000001", "restore failed").ok());
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "aborted");
}

// An ABORT during a hung restore stops it at once instead of queueing
// behind it until the deadline.
TEST_F(TargetTest, AnAbortStopsARestoreUnderWay) {
  ASSERT_TRUE(n2.target().prepare("n1", request("0000000000000001", "web", "10.200.1.10")).ok());
  sendImages("0000000000000001");
  n2.restoreHangs = true;
  Status restored;
  std::thread restoring([&] { restored = n2.target().restore("n1", "0000000000000001", false, {}, 600000).status(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int64_t t0 = monotonicNs();
  Status aborted = n2.target().abort("n1", "0000000000000001", "source gave up");
  restoring.join();
  EXPECT_TRUE(aborted.ok()) << aborted.toString();
  EXPECT_LT((monotonicNs() - t0) / 1000000, 4000);
  EXPECT_EQ(restored.code(), Code::kCancelled) << restored.toString();
  EXPECT_EQ(n2.find("web"), nullptr);
  EXPECT_EQ(n2.audit().getMigration("0000000000000001")->result, "aborted");
  // A restore asked after the abort finds nothing to restore.
  EXPECT_EQ(n2.target().restore("n1", "0000000000000001", false, {}).status().code(), Code::kNotFound);
}

TEST_F(TargetTest, CleanupStaleRemovesLeftoversOnly) {
  ASSERT_TRUE(makeDirs(n2.stagingRoot() + "/.incoming-0000000000000009/rootfs").ok());
  ASSERT_TRUE(makeDirs(n2.imagesRoot() + "/0000000000000009").ok());
  ASSERT_TRUE(makeDirs(n2.imagesDiskRoot() + "/000000000000000a").ok());
  n2.addRunning("web", "10.200.1.10");
  n2.target().cleanupStale();
  EXPECT_FALSE(pathExists(n2.stagingRoot() + "/.incoming-0000000000000009"));
  EXPECT_FALSE(pathExists(n2.imagesRoot() + "/0000000000000009"));
  EXPECT_FALSE(pathExists(n2.imagesDiskRoot() + "/000000000000000a"));
  EXPECT_TRUE(pathExists(n2.rootfs("web") + "/var/data/state"));
}

}  // namespace
}  // namespace lxmig::migration
