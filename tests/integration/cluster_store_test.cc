// The cluster store on a real etcd (Debian's etcd-server) started on a
// loopback port in a temporary directory: registration under a lease, a
// node that stops renewing drops out after its TTL, one leaves at once,
// cluster-wide locks (taken by one holder only, released by unlock or by
// the holder's death), an endpoint that does not answer hands over to the
// next, and an unreachable etcd gives one-line errors within the deadline.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/process.h"
#include "lxmig/sched/cluster_store.h"
#include "lxmig/sched/etcd.h"
#include "prerequisite.h"
#include "unit/temp_dir.h"

namespace lxmig::sched {
namespace {

using namespace std::chrono_literals;
constexpr const char* kEtcd = "/usr/bin/etcd";

// A loopback TCP port nobody listens on right now.
int freePort() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return 0;
  return ntohs(a.sin_port);
}

// One etcd member on 127.0.0.1, its data in a temporary directory; killed
// (it is our child) and its directory removed when the object goes.
class EtcdServer {
 public:
  EtcdServer() : dir_("lxmig-etcd-test") {}
  Status start() {
    if (!dir_.ok()) return internalError("mkdtemp failed");
    const int client = freePort(), peer = freePort();
    url_ = "http://127.0.0.1:" + std::to_string(client);
    const std::string peerUrl = "http://127.0.0.1:" + std::to_string(peer);
    SpawnOptions so;
    so.stderrPath = dir_.path() + "/etcd.log";
    LXMIG_ASSIGN_OR_RETURN(
        child_, spawn({kEtcd, "--name", "t", "--data-dir", dir_.path() + "/data", "--listen-client-urls", url_,
                       "--advertise-client-urls", url_, "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls",
                       peerUrl, "--initial-cluster", "t=" + peerUrl},
                      so));
    LXMIG_ASSIGN_OR_RETURN(auto e, Etcd::connect({url_}, {}, 1000));
    for (int i = 0; i < 150; ++i) {
      if (e->list("/").ok()) return okStatus();
      std::this_thread::sleep_for(100ms);
    }
    auto log = readFile(dir_.path() + "/etcd.log");
    return unavailable("etcd did not answer on " + url_ + " within 15 s: " + (log.ok() ? log->substr(0, 2000) : ""));
  }
  const std::string& url() const { return url_; }

 private:
  testing::TempDir dir_;
  std::string url_;
  Child child_;
};

class ClusterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LXMIG_REQUIRE(::access(kEtcd, X_OK) == 0, "etcd (apt-get install etcd-server; scripts/setup.sh does)");
    Status st = etcd_.start();
    ASSERT_TRUE(st.ok()) << st.toString();
  }
  StoreConfig config(int ttl = 3) const {
    StoreConfig c;
    c.etcd = {etcd_.url()};
    c.ttlSeconds = ttl;
    return c;
  }
  // Waits up to `limit` for `done`.
  template <typename F>
  static bool eventually(F done, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return done();
  }
  EtcdServer etcd_;
};

TEST_F(ClusterStoreTest, NodesRegisterStayWhileRenewingAndLeaveAtOnce) {
  auto n1 = Membership::start(config(), "n1", "10.99.0.11:7443");
  ASSERT_TRUE(n1.ok()) << n1.status().toString();
  auto n2 = Membership::start(config(), "n2", "10.99.0.12:7443");
  ASSERT_TRUE(n2.ok()) << n2.status().toString();
  ASSERT_TRUE(eventually([&] { return (*n1)->registered() && (*n2)->registered(); }));
  const std::map<std::string, std::string> both = {{"n1", "10.99.0.11:7443"}, {"n2", "10.99.0.12:7443"}};
  ASSERT_TRUE(eventually([&] {
    auto m = (*n1)->members();
    return m.ok() && *m == both;
  }));
  auto members = (*n1)->members();
  // Three TTLs later both are still there: the leases are renewed.
  std::this_thread::sleep_for(9s);
  members = (*n2)->members();
  ASSERT_TRUE(members.ok()) << members.status().toString();
  EXPECT_EQ(members->size(), 2u);
  EXPECT_EQ((*n1)->reRegistrations(), 0);
  // A node that stops leaves at once (its lease revoked; the others see it
  // with their next read, within a second).
  n2->reset();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually(
      [&] {
        auto m = (*n1)->members();
        return m.ok() && *m == std::map<std::string, std::string>{{"n1", "10.99.0.11:7443"}};
      },
      3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
}

TEST_F(ClusterStoreTest, ANodeThatStopsRenewingDropsOutAfterItsTtl) {
  auto e = Etcd::connect({etcd_.url()}, {}, 3000);
  ASSERT_TRUE(e.ok()) << e.status().toString();
  // A node that died: registered under a 3 s lease nobody renews.
  auto lease = (*e)->grant(3);
  ASSERT_TRUE(lease.ok()) << lease.status().toString();
  ASSERT_TRUE((*e)->put(nodeKey("dead"), "10.99.0.19:7443", *lease).ok());
  ASSERT_TRUE((*e)->createIfAbsent(lockKey("containers/web"), "dead m1", *lease).ok());
  auto n1 = Membership::start(config(), "n1", "10.99.0.11:7443");
  ASSERT_TRUE(n1.ok());
  ASSERT_TRUE(eventually([&] { return (*n1)->registered(); }));
  EXPECT_TRUE(eventually([&] {
    auto m = (*n1)->members();
    return m.ok() && m->count("dead") == 1;
  }));
  // Its lock is held meanwhile, and says by whom.
  auto holder = (*n1)->lock("containers/web", "n1 m2");
  ASSERT_TRUE(holder.ok()) << holder.status().toString();
  EXPECT_EQ(*holder, "dead m1");
  EXPECT_TRUE(eventually(
      [&] {
        auto m = (*n1)->members();
        return m.ok() && !m->count("dead");
      },
      10s))
      << "a node whose lease is not renewed stays in the inventory";
  holder = (*n1)->lock("containers/web", "n1 m2");
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(*holder, "") << "the dead holder's lock was not released with its lease";
  EXPECT_EQ((*e)->keepAlive(*lease).status().code(), Code::kNotFound);
}

TEST_F(ClusterStoreTest, ALockHasOneHolderUntilReleasedOrItsNodeLeaves) {
  auto n1 = Membership::start(config(), "n1", "10.99.0.11:7443");
  auto n2 = Membership::start(config(), "n2", "10.99.0.12:7443");
  ASSERT_TRUE(n1.ok() && n2.ok());
  ASSERT_TRUE(eventually([&] { return (*n1)->registered() && (*n2)->registered(); }));
  auto a = (*n1)->lock("rebalance", "n1 rebalance pid 10");
  ASSERT_TRUE(a.ok()) << a.status().toString();
  EXPECT_EQ(*a, "");
  auto b = (*n2)->lock("rebalance", "n2 rebalance pid 20");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "n1 rebalance pid 10");
  // Another holder's unlock leaves it alone.
  ASSERT_TRUE((*n2)->unlock("rebalance", "n2 rebalance pid 20").ok());
  b = (*n2)->lock("rebalance", "n2 rebalance pid 20");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "n1 rebalance pid 10");
  ASSERT_TRUE((*n1)->unlock("rebalance", "n1 rebalance pid 10").ok());
  b = (*n2)->lock("rebalance", "n2 rebalance pid 20");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "");
  // n2 leaves: its lock goes with its lease.
  n2->reset();
  a = (*n1)->lock("rebalance", "n1 rebalance pid 11");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "");
  // Names and holders are checked before anything reaches etcd.
  EXPECT_EQ((*n1)->lock("../x", "h").status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*n1)->lock("ok", "two\nlines").status().code(), Code::kInvalidArgument);
}

TEST_F(ClusterStoreTest, AnEndpointThatDoesNotAnswerHandsOverToTheNext) {
  StoreConfig c = config();
  c.etcd.insert(c.etcd.begin(), "http://127.0.0.1:" + std::to_string(freePort()));
  auto n1 = Membership::start(c, "n1", "10.99.0.11:7443");
  ASSERT_TRUE(n1.ok());
  EXPECT_TRUE(eventually([&] { return (*n1)->registered(); }, 15s));
  EXPECT_TRUE(eventually(
      [&] {
        auto m = (*n1)->members();
        return m.ok() && m->count("n1") == 1;
      },
      15s));
}

TEST_F(ClusterStoreTest, AnUnreachableEtcdGivesOneLineErrorsWithinTheDeadline) {
  StoreConfig c;
  c.etcd = {"http://127.0.0.1:" + std::to_string(freePort())};
  auto n1 = Membership::start(c, "n1", "10.99.0.11:7443");
  ASSERT_TRUE(n1.ok()) << "an unreachable etcd must not stop the agent: " << n1.status().toString();
  EXPECT_FALSE((*n1)->registered());
  // Reading the membership never waits for etcd.
  const auto t0 = std::chrono::steady_clock::now();
  auto members = (*n1)->members();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  ASSERT_FALSE(members.ok());
  EXPECT_EQ(members.status().code(), Code::kUnavailable);
  EXPECT_EQ(members.status().message().find('\n'), std::string::npos) << members.status().message();
  auto lock = (*n1)->lock("rebalance", "x");
  ASSERT_FALSE(lock.ok());
  EXPECT_NE(lock.status().message().find("not registered"), std::string::npos) << lock.status().message();
}

}  // namespace
}  // namespace lxmig::sched
