// The net/ component on the real kernel: nftables rules and conntrack
// entries exported from one network namespace and imported into another
// (two namespaces stand for two nodes; no test bed, no containers). Every
// check reads the kernel's state back with the stock tools (nft, conntrack).
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <functional>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "prerequisite.h"

#include "lxmig/base/files.h"
#include "lxmig/base/process.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/net/cutover.h"
#include "lxmig/net/firewall.h"
#include "lxmig/net/netns.h"

namespace lxmig::net {
namespace {

// A network namespace made for the test and removed afterwards.
class Netns {
 public:
  explicit Netns(std::string name) : name_(std::move(name)) {
    (void)runCommand({"ip", "netns", "del", name_});
    auto r = runCommand({"ip", "netns", "add", name_});
    ok_ = r.ok() && r->exitCode == 0;
  }
  ~Netns() { (void)runCommand({"ip", "netns", "del", name_}); }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

  // Runs fn with this thread inside the namespace (setns acts per thread),
  // then returns to where it was.
  template <typename F>
  auto in(F fn) -> decltype(fn()) {
    struct Back {
      int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      ~Back() {
        EXPECT_EQ(::setns(home, CLONE_NEWNET), 0);
        ::close(home);
      }
    } back;
    int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::setns(fd, CLONE_NEWNET), 0);
    ::close(fd);
    return fn();
  }
  // A command inside the namespace; its stdout (and stderr on failure).
  std::string sh(const std::string& cmd) {
    auto r = runCommand({"ip", "netns", "exec", name_, "sh", "-c", cmd}, {.timeoutMs = 20000});
    if (!r.ok()) return "ERROR " + r.status().message();
    return r->exitCode == 0 ? r->out : "ERROR " + r->err;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LXMIG_REQUIRE(::geteuid() == 0, "root");
    ASSERT_TRUE(a.ok() && b.ok());
    // Conntrack entries need the tracker in the namespace: one rule that
    // uses it loads it, as on a real node.
    for (Netns* n : {&a, &b})
      ASSERT_EQ(n->sh("nft add table ip warm; nft add chain ip warm c '{ type filter hook "
                      "prerouting priority 0; }'; nft add rule ip warm c ct state new accept")
                    .rfind("ERROR", 0),
                std::string::npos);
  }
  Netns a{"lxnet-a"}, b{"lxnet-b"};
};

TEST_F(NetTest, RulesMoveExactlyAndAtomically) {
  // The operator's own table in both namespaces: never touched.
  for (Netns* n : {&a, &b})
    ASSERT_EQ(n->sh("nft add table inet operator; nft add chain inet operator c; nft add rule inet operator c tcp "
                    "dport 22 accept")
                  .rfind("ERROR", 0),
              std::string::npos);
  const std::string operatorA = a.sh("nft list table inet operator");

  auto fwA = a.in([] { return Firewall::open("lxmig"); });
  ASSERT_TRUE(fwA.ok()) << fwA.status().toString();
  auto fwB = b.in([] { return Firewall::open("lxmig"); });
  ASSERT_TRUE(fwB.ok());
  // Every call runs inside its node's namespace, as the agent does.
  auto F = [&](auto fn) { return a.in([&] { return fn(*fwA); }); };
  auto G = [&](auto fn) { return b.in([&] { return fn(*fwB); }); };
  ASSERT_TRUE(F([&](Firewall& f) { return f.ensureBase({.strict = true, .bridge = "lxbr0"}); }).ok());
  ASSERT_TRUE(F([&](Firewall& f) { return f.addContainer("web", "10.200.1.10"); }).ok());
  ASSERT_TRUE(F([&](Firewall& f) { return f.addContainer("db", "10.200.1.11"); }).ok());
  auto r1 = F([&](Firewall& f) { return f.addRule("web", "tcp dport 80 accept"); });
  ASSERT_TRUE(r1.ok()) << r1.status().toString();
  EXPECT_EQ(r1->text, "tcp dport 80 accept");
  ASSERT_TRUE(F([&](Firewall& f) { return f.addRule("web", "udp dport 5353 counter accept comment \"mdns\""); }).ok());
  ASSERT_TRUE(F([&](Firewall& f) { return f.addRule("db", "tcp dport 5432 accept"); }).ok());

  // Malformed or dangerous input: one line, nothing changes.
  std::string before = a.sh("nft list table inet lxmig");
  for (const char* bad : {"tcp dport eighty accept", "tcp dport 80 accept; flush ruleset", "jump forward",
                          "tcp dport 80 goto in-db", "", "tcp dport 80 accept\nflush ruleset"}) {
    auto r = F([&](Firewall& f) { return f.addRule("web", bad); });
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(F([&](Firewall& f) { return f.addRule("nosuch", "tcp dport 1 accept"); }).status().code(), Code::kNotFound);
  EXPECT_EQ(a.sh("nft list table inet lxmig"), before);

  auto list = F([&](Firewall& f) { return f.listRules("web"); });
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].text, "udp dport 5353 counter packets 0 bytes 0 accept comment \"mdns\"");

  // Export web, import on b (whose lxmig table is fresh).
  auto doc = F([&](Firewall& f) { return f.exportContainer("web", "10.200.1.10"); });
  ASSERT_TRUE(doc.ok()) << doc.status().toString();
  ASSERT_TRUE(G([&](Firewall& g) { return g.ensureBase({.strict = true, .bridge = "lxbr0"}); }).ok());
  Status im = G([&](Firewall& g) { return g.importContainer("web", "10.200.1.10", *doc); });
  ASSERT_TRUE(im.ok()) << im.toString();
  auto listB = G([&](Firewall& g) { return g.listRules("web"); });
  ASSERT_TRUE(listB.ok());
  ASSERT_EQ(listB->size(), 2u);
  EXPECT_EQ((*listB)[0].text, "tcp dport 80 accept");
  EXPECT_NE((*listB)[1].text.find("comment \"mdns\""), std::string::npos);
  EXPECT_NE(b.sh("nft list map inet lxmig inbound").find("10.200.1.10 : jump in-web"), std::string::npos);
  EXPECT_EQ(G([&](Firewall& g) { return g.listRules("db"); }).status().code(), Code::kNotFound) << "only web moved";
  // Importing twice leaves one copy of each rule.
  im = G([&](Firewall& g) { return g.importContainer("web", "10.200.1.10", *doc); });
  ASSERT_TRUE(im.ok()) << im.toString();
  EXPECT_EQ(G([&](Firewall& g) { return g.listRules("web"); })->size(), 2u);

  // An export whose second rule cannot apply on b changes nothing on b.
  std::string broken = *doc;
  auto at = broken.find("5353");
  ASSERT_NE(at, std::string::npos);
  std::string bad = R"({"container":"api","ip":"10.200.1.12","rules":[)"
                    R"({"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},)"
                    R"("right":81}},{"accept":null}]},)"
                    R"({"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"nosuchfield"}},)"
                    R"("right":82}},{"accept":null}]}]})";
  std::string beforeB = b.sh("nft list table inet lxmig");
  Status imp = G([&](Firewall& g) { return g.importContainer("api", "10.200.1.12", bad); });
  EXPECT_FALSE(imp.ok());
  EXPECT_EQ(b.sh("nft list table inet lxmig"), beforeB) << "a failed import leaves no trace";
  EXPECT_EQ(G([&](Firewall& g) { return g.importContainer("api", "10.200.1.12", "{not json"); }).code(),
            Code::kInvalidArgument);

  // The source drops web on commit; db and the operator stay.
  ASSERT_TRUE(F([&](Firewall& f) { return f.removeContainer("web"); }).ok());
  EXPECT_EQ(F([&](Firewall& f) { return f.listRules("web"); }).status().code(), Code::kNotFound);
  EXPECT_EQ(F([&](Firewall& f) { return f.listRules("db"); })->size(), 1u);
  EXPECT_EQ(a.sh("nft list map inet lxmig inbound").find("10.200.1.10"), std::string::npos);
  EXPECT_EQ(a.sh("nft list table inet operator"), operatorA);
  ASSERT_TRUE(F([&](Firewall& f) { return f.removeContainer("web"); }).ok()) << "idempotent";
  // Base chain re-applied (agent restart) keeps container chains.
  ASSERT_TRUE(F([&](Firewall& f) { return f.ensureBase({.strict = true, .bridge = "lxbr0"}); }).ok());
  EXPECT_EQ(F([&](Firewall& f) { return f.listRules("db"); })->size(), 1u);
  auto cs = F([&](Firewall& f) { return f.containers(); });
  ASSERT_TRUE(cs.ok());
  EXPECT_EQ(*cs, std::vector<std::string>{"db"});

  // The frozen window's sets: silenced for a moment (speak), then again;
  // a forwarding entry ended; each idempotent.
  auto silenced = [&] { return a.sh("nft list set inet lxmig silenced").find("10.200.1.11") != std::string::npos; };
  ASSERT_TRUE(F([&](Firewall& f) { return f.silence("10.200.1.11"); }).ok());
  EXPECT_TRUE(silenced());
  ASSERT_TRUE(F([&](Firewall& f) { return f.unsilence("10.200.1.11"); }).ok());
  EXPECT_FALSE(silenced());
  EXPECT_TRUE(F([&](Firewall& f) { return f.unsilence("10.200.1.11"); }).ok()) << "not there: nothing to do";
  EXPECT_EQ(F([&](Firewall& f) { return f.unsilence("10.200.1"); }).code(), Code::kInvalidArgument);
  ASSERT_TRUE(F([&](Firewall& f) { return f.forwardFor("10.200.1.11", 60); }).ok());
  EXPECT_NE(a.sh("nft list set inet lxmig forwarding").find("10.200.1.11"), std::string::npos);
  ASSERT_TRUE(F([&](Firewall& f) { return f.endForwarding("10.200.1.11"); }).ok());
  EXPECT_EQ(a.sh("nft list set inet lxmig forwarding").find("10.200.1.11"), std::string::npos);
  EXPECT_TRUE(F([&](Firewall& f) { return f.endForwarding("10.200.1.11"); }).ok());
}

TEST_F(NetTest, ConntrackEntriesMoveWithStateTimeoutMarkAndNat) {
  // Entries of the container 10.200.1.10 (one NATed toward it), and one of
  // another container.
  const char* add =
      "conntrack -I -p tcp -s 10.99.0.2 -d 10.200.1.10 --sport 40000 --dport 7000 --state ESTABLISHED "
      "-u SEEN_REPLY,ASSURED -t 3000 -m 42 && "
      "conntrack -I -p udp -s 10.99.0.2 -d 10.200.1.10 --sport 5000 --dport 53 -t 100 -u SEEN_REPLY && "
      "conntrack -I -p tcp -s 10.99.0.3 -d 10.99.0.100 --sport 41000 --dport 80 --dst-nat 10.200.1.10:8080 "
      "--state ESTABLISHED -u SEEN_REPLY,ASSURED -t 2000 && "
      "conntrack -I -p tcp -s 10.99.0.2 -d 10.200.1.11 --sport 40001 --dport 7000 --state ESTABLISHED "
      "-u SEEN_REPLY -t 3000";
  ASSERT_EQ(a.sh(add).rfind("ERROR", 0), std::string::npos) << a.sh(add);

  auto got = a.in([] { return exportConntrack({"10.200.1.10"}); });
  ASSERT_TRUE(got.ok()) << got.status().toString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ(a.in([] { return exportConntrack({"bogus"}); }).status().code(), Code::kInvalidArgument);

  auto st = b.in([&] { return importConntrack(*got); });
  ASSERT_TRUE(st.ok()) << st.status().toString();
  EXPECT_EQ(st->created, 3u);
  std::string lb = b.sh("conntrack -L 2>/dev/null");
  EXPECT_NE(lb.find("ESTABLISHED src=10.99.0.2 dst=10.200.1.10 sport=40000 dport=7000 src=10.200.1.10 "
                    "dst=10.99.0.2 sport=7000 dport=40000 [ASSURED] mark=42"),
            std::string::npos)
      << lb;
  EXPECT_NE(lb.find("src=10.99.0.2 dst=10.200.1.10 sport=5000 dport=53 src=10.200.1.10 dst=10.99.0.2 sport=53 "
                    "dport=5000"),
            std::string::npos)
      << lb;
  EXPECT_NE(lb.find("src=10.99.0.3 dst=10.99.0.100 sport=41000 dport=80 src=10.200.1.10 dst=10.99.0.3 sport=8080 "
                    "dport=41000 [ASSURED]"),
            std::string::npos)
      << "the DNAT mapping came along: " << lb;
  EXPECT_EQ(lb.find("10.200.1.11"), std::string::npos) << "another container's entry stayed";
  // Timeouts: what was left (give or take the seconds the test took).
  auto back = b.in([] { return exportConntrack({"10.200.1.10"}); });
  ASSERT_TRUE(back.ok());
  for (const auto& e : *back)
    if (e.origSport == 40000) {
      EXPECT_GT(e.timeout, 2980u);
      EXPECT_EQ(e.mark, 42u);
    }
  // The wire form carries every field.
  auto decoded = decodeConntrack(encodeConntrack(*got));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, *got);
  EXPECT_FALSE(decodeConntrack(encodeConntrack(*got).substr(0, 20)).ok());
  // Importing again updates in place instead of failing.
  auto again = b.in([&] { return importConntrack(*got); });
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(again->updated, 3u);

  // Commit on the source: the container's entries go, the other stays.
  auto gone = a.in([] { return deleteConntrack({"10.200.1.10"}); });
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, 3u);
  std::string la = a.sh("conntrack -L 2>/dev/null");
  EXPECT_EQ(la.find("10.200.1.10"), std::string::npos) << la;
  EXPECT_NE(la.find("10.200.1.11"), std::string::npos) << la;
}

TEST_F(NetTest, ConntrackBatchesOfThousands) {
  // Many entries at once: batching and error mapping work past one batch.
  std::string file;
  for (int i = 0; i < 5000; ++i)
    file += "-I -p udp -s 10.99." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250) +
            " -d 10.200.1.10 --sport " + std::to_string(10000 + i) + " --dport 53 -t 300\n";
  ASSERT_TRUE(writeFileAtomic("/tmp/lxnet-entries", file, 0600).ok());
  ASSERT_EQ(a.sh("conntrack -R /tmp/lxnet-entries >/dev/null 2>&1; conntrack -C").rfind("ERROR", 0), std::string::npos);
  (void)::unlink("/tmp/lxnet-entries");
  auto got = a.in([] { return exportConntrack({"10.200.1.10"}); });
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 5000u);
  auto st = b.in([&] { return importConntrack(*got); });
  ASSERT_TRUE(st.ok()) << st.status().toString();
  EXPECT_EQ(st->created, 5000u);
  EXPECT_EQ(std::string(trim(b.sh("conntrack -C"))), "5000");
  // A refused entry names itself: an ICMP entry with a bogus type.
  ConntrackEntries bad(1);
  bad[0].proto = IPPROTO_ICMP;
  bad[0].origSrc = 0x0100000a;
  bad[0].origDst = 0x0a01c80a;
  bad[0].replSrc = 0x0a01c80a;
  bad[0].replDst = 0x0100000a;
  bad[0].icmpType = 200;
  bad[0].timeout = 30;
  auto r = b.in([&] { return importConntrack(bad); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("icmp 10.0.0.1 -> 10.200.1.10"), std::string::npos) << r.status().message();
}

TEST_F(NetTest, AddressRoutesAreSetAndWithdrawnThroughNetlink) {
  // The cut-over's routes, set and removed by the agent over rtnetlink,
  // read back with `ip route`: a /32 on the bridge, then a forwarding route
  // via the new node (proto 252), removed only while it still leads there.
  ASSERT_EQ(
      a.sh("ip link add lxbr-t type bridge && ip link set lxbr-t up && ip link add fab-t type veth peer name fab-p && "
           "ip addr add 10.99.0.11/24 dev fab-t && ip link set fab-t up && ip link set fab-p up")
          .rfind("ERROR", 0),
      std::string::npos);
  const AddressRoute r{"10.200.1.10", "lxbr-t", ""};
  ASSERT_TRUE(a.in([&] { return claimAddress(r); }).ok());
  ASSERT_TRUE(a.in([&] { return claimAddress(r); }).ok()) << "idempotent";
  const std::string link = a.sh("ip route show 10.200.1.10/32");
  EXPECT_EQ(link.rfind("10.200.1.10 dev lxbr-t scope link", 0), 0u) << link;  // proto boot is not printed
  ASSERT_TRUE(a.in([&] { return releaseAddress(r); }).ok());
  EXPECT_EQ(a.sh("ip route show 10.200.1.10/32"), "");
  EXPECT_TRUE(a.in([&] { return releaseAddress(r); }).ok()) << "a route that is gone is withdrawn";
  EXPECT_TRUE(a.in([&] { return releaseAddress({"10.200.1.10", "no-such-if", ""}); }).ok());
  EXPECT_FALSE(a.in([&] { return claimAddress({"10.200.1.10", "no-such-if", ""}); }).ok());
  EXPECT_FALSE(a.in([&] { return claimAddress({"10.200.1", "lxbr-t", ""}); }).ok());
  // A neighbour entry for an address whose container is gone is forgotten.
  ASSERT_EQ(a.sh("ip neigh replace 10.200.1.10 lladdr 02:00:00:00:00:01 dev lxbr-t nud reachable").rfind("ERROR", 0),
            std::string::npos);
  EXPECT_NE(a.sh("ip neigh show 10.200.1.10 dev lxbr-t"), "");
  ASSERT_TRUE(a.in([&] { return forgetNeighbour(r); }).ok());
  EXPECT_EQ(a.sh("ip neigh show 10.200.1.10 dev lxbr-t"), "");
  EXPECT_TRUE(a.in([&] { return forgetNeighbour(r); }).ok()) << "none left: nothing to do";

  const AddressRoute f{"10.200.1.10", "lxbr-t", "fab-t"};
  ASSERT_TRUE(a.in([&] { return routeVia(f, "10.99.0.12"); }).ok());
  const std::string via = a.sh("ip route show 10.200.1.10/32");
  EXPECT_EQ(via.rfind("10.200.1.10 via 10.99.0.12 dev fab-t proto 252", 0), 0u) << via;
  EXPECT_TRUE(a.in([&] { return unrouteVia(f, "10.99.0.13"); }).ok()) << "leads elsewhere: kept";
  EXPECT_NE(a.sh("ip route show 10.200.1.10/32"), "");
  EXPECT_TRUE(a.in([&] { return unrouteVia(f, "10.99.0.12"); }).ok());
  EXPECT_EQ(a.sh("ip route show 10.200.1.10/32"), "");
}

TEST_F(NetTest, APreparedNamespaceHasTheLayoutAndGoesAwayWithIt) {
  // What a target prepares before the freeze (net/netns.h), in namespace a
  // standing for the node: read back with the tools a source uses on a
  // running container's namespace.
  NetnsLayout l;
  l.hwaddr = "02:4c:4d:c8:01:0a";
  l.mtu = 1400;
  l.addresses = {{"10.200.1.10", 16, "0.0.255.255"}, {"10.200.1.11", 16, ""}};
  l.gateway = "10.200.0.1";
  l.hostVeth = "lxmtest0";
  std::unique_ptr<PreparedNetns> ns;
  a.in([&] {
    auto made = PreparedNetns::create(l);
    ASSERT_TRUE(made.ok()) << made.status().toString();
    ns = std::move(*made);
  });
  ASSERT_TRUE(ns);
  const std::string host = a.sh("ip -o link show lxmtest0");
  EXPECT_EQ(host.rfind("ERROR", 0), std::string::npos) << host;
  EXPECT_EQ(host.find("master"), std::string::npos) << "on no bridge before the restore: " << host;
  EXPECT_NE(host.find(",UP"), std::string::npos) << host;
  auto back = netnsLayoutOf(ns->path());
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->hwaddr, l.hwaddr);
  // While CRIU restores into it, its links' MTUs are one off (restored
  // sockets then compute their segment size again once it runs).
  auto mtus = [&] {
    std::string out;
    EXPECT_TRUE(inNamespace(ns->path(), CLONE_NEWNET, [&] {
                  // (`ip`: /sys/class/net shows the namespace sysfs was mounted in)
                  auto r = runCommand({"sh", "-c", "ip -o link show eth0; ip -o link show lo"});
                  if (r.ok())
                    for (const auto& line : split(r->out, '\n'))
                      if (auto at = line.find(" mtu "); at != std::string::npos)
                        out += line.substr(at + 5, line.find(' ', at + 5) - at - 5) + "\n";
                  return r.status();
                }).ok());
    return out;
  };
  EXPECT_EQ(back->mtu, 1399);
  EXPECT_EQ(mtus(), "1399\n65534\n");
  EXPECT_EQ(back->gateway, "10.200.0.1");
  ASSERT_EQ(back->addresses.size(), 2u);
  EXPECT_EQ(back->addresses[0].ip, "10.200.1.10");
  EXPECT_EQ(back->addresses[0].prefixLen, 16);
  EXPECT_EQ(back->addresses[0].broadcast, "0.0.255.255");
  EXPECT_EQ(back->addresses[1].broadcast, "");
  const std::string shape = ns->shape();
  EXPECT_NE(shape.find("\"ifindex\":2,\"ifname\":\"eth0\""), std::string::npos)
      << "eth0 is link 2, as liblxc makes it\n"
      << shape;
  EXPECT_NE(shape.find("\"local\":\"fe80::4c:4dff:fec8:10a\""), std::string::npos)
      << "the kernel's link-local address of the MAC\n"
      << shape;
  std::string local6;
  ASSERT_TRUE(inNamespace(ns->path(), CLONE_NEWNET, [&] {
                auto r = runCommand({"ip", "-6", "route", "show", "table", "local"});
                if (r.ok()) local6 = r->out;
                return r.status();
              }).ok());
  EXPECT_NE(local6.find("local fe80::4c:4dff:fec8:10a"), std::string::npos) << "usable at once (no DAD)\n" << local6;
  EXPECT_NE(shape.find("sysctl ipv4/conf/eth0/rp_filter = "), std::string::npos) << shape;
  EXPECT_NE(shape.find("sysctl unix/max_dgram_qlen = "), std::string::npos) << shape;
  // Locked until the restore is done: CRIU does not lock a namespace it
  // joins.
  auto tables = [&] {
    std::string out;
    EXPECT_TRUE(inNamespace(ns->path(), CLONE_NEWNET, [&] {
                  auto r = runCommand({"nft", "list", "tables"});
                  if (r.ok()) out = r->out;
                  return r.status();
                }).ok());
    return out;
  };
  EXPECT_NE(tables().find("table inet lxmig-restore-lock"), std::string::npos) << tables();
  ASSERT_TRUE(ns->unlock().ok());
  EXPECT_EQ(tables().find("lxmig-restore-lock"), std::string::npos) << tables();
  EXPECT_EQ(mtus(), "1400\n65536\n") << "its own MTUs once unlocked";
  EXPECT_FALSE(ns->unlock().ok()) << "unlocked once";
  // Read again: nothing in it changes by itself.
  auto again = netnsShape(ns->path());
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(*again, shape) << shapeDifference(*again, shape);
  // What a container may change in its namespace shows, named.
  ASSERT_TRUE(inNamespace(ns->path(), CLONE_NEWNET, [] {
                auto r = runCommand({"sh", "-c", "ip addr add 10.201.0.5/32 dev eth0 && nft add table inet mine"});
                return r.ok() && r->exitCode == 0 ? okStatus() : internalError("ip/nft in the prepared namespace");
              }).ok());
  auto changed = netnsShape(ns->path());
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(shapeDifference(*changed, shape).find("10.201.0.5"), std::string::npos) << shapeDifference(*changed, shape);
  EXPECT_NE(changed->find("nft table inet mine"), std::string::npos) << *changed;
  // Gone with the object: the host end, and the namespace with it.
  a.in([&] { ns.reset(); });
  EXPECT_EQ(a.sh("ip -o link show lxmtest0").rfind("ERROR", 0), 0u);
  // A bad layout makes nothing.
  l.hostVeth = "lxmtest1";
  l.hwaddr = "nonsense";
  a.in([&] { EXPECT_EQ(PreparedNetns::create(l).status().code(), Code::kInvalidArgument); });
  EXPECT_EQ(a.sh("ip -o link show lxmtest1").rfind("ERROR", 0), 0u);
}

TEST_F(NetTest, AGlanceSeesAddressAndRouteChangesOnly) {
  // The frozen window's look at a namespace: a process's /proc/PID/net.
  auto sleeper = spawn({"ip", "netns", "exec", "lxnet-a", "sleep", "30"});
  ASSERT_TRUE(sleeper.ok()) << sleeper.status().toString();
  std::string first;
  uint64_t inode = 0;
  for (int i = 0; i < 100 && first.find("dev lo") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto g = netnsGlance(sleeper->pid(), &inode);
    if (g.ok()) first = *g;
  }
  ASSERT_NE(first.find("dev lo"), std::string::npos) << first;
  EXPECT_NE(inode, 0u);
  ASSERT_EQ(a.sh("ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1; true").rfind("ERROR", 0), std::string::npos);
  uint64_t same = 0;
  EXPECT_EQ(*netnsGlance(sleeper->pid(), &same), first) << "traffic changes no line";
  EXPECT_EQ(same, inode);
  ASSERT_EQ(
      a.sh("ip link add gl0 type dummy 2>/dev/null || ip link add gl0 type veth peer name gl1; ip link set gl0 up; "
           "ip addr add 10.202.0.1/24 dev gl0")
          .rfind("ERROR", 0),
      std::string::npos);
  auto changed = netnsGlance(sleeper->pid(), &same);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(*changed, first);
  EXPECT_EQ(netnsGlance(999999999, &same).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace lxmig::net
