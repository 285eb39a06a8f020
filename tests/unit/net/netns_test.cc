// A layout's grammar (it comes from a peer) and the report of two shapes
// that differ (net/netns.h); the namespaces themselves are made in the
// integration suite (NetTest).
#include "lxmig/net/netns.h"

#include <gtest/gtest.h>

#include "netns_parse.h"

namespace lxmig::net {
namespace {

NetnsLayout good() {
  NetnsLayout l;
  l.hwaddr = "02:4c:4d:c8:01:0a";
  l.mtu = 1500;
  l.addresses = {{"10.200.1.10", 16, "0.0.255.255"}};
  l.gateway = "10.200.0.1";
  l.hostVeth = "lxm0123456789ab";
  return l;
}

TEST(NetnsLayout, EveryFieldIsCheckedAndNamedWhenBad) {
  EXPECT_TRUE(checkLayout(good()).ok()) << checkLayout(good()).toString();
  auto bad = [](auto change) {
    NetnsLayout l = good();
    change(l);
    return checkLayout(l);
  };
  Status st = bad([](NetnsLayout& l) { l.hostVeth = "../eth0"; });
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("`../eth0`"), std::string::npos) << st.message();
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.hostVeth = "lxm0123456789abc"; }).ok()) << "16 characters";
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.hostVeth = ""; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.hostVeth = "Lxm1"; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.hwaddr = "02:4c:4d:c8:01"; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.hwaddr = "02:4c:4d:c8:01:0g"; }).ok());
  st = bad([](NetnsLayout& l) { l.hwaddr = "02:4c:4d:c8:01:0a\nlink set lo down"; });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << "one line: " << st.message();
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.mtu = 67; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.mtu = 65536; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses.clear(); }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses = std::vector<NetnsAddress>(65, {"10.0.0.1", 8, ""}); }).ok());
  st = bad([](NetnsLayout& l) { l.addresses[0].ip = "10.200.1.10 dev lo"; });
  EXPECT_NE(st.message().find("not an IPv4 address"), std::string::npos) << st.message();
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses[0].ip = std::string("10.0.0.1\0x", 10); }).ok()) << "NUL";
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses[0].prefixLen = 0; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses[0].prefixLen = 33; }).ok());
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.addresses[0].broadcast = "x"; }).ok());
  EXPECT_TRUE(bad([](NetnsLayout& l) { l.addresses[0].broadcast = ""; }).ok()) << "no broadcast is one choice";
  EXPECT_FALSE(bad([](NetnsLayout& l) { l.gateway = "10.200.0.1\nroute flush"; }).ok());
  EXPECT_TRUE(bad([](NetnsLayout& l) { l.gateway = ""; }).ok()) << "no default route";
}

TEST(NetnsShape, TheReportNamesALineOfEachSide) {
  const std::string ours = "link eth0\naddr eth0 10.200.1.10\naddr eth0 10.201.0.5\n";
  const std::string theirs = "link eth0\naddr eth0 10.200.1.10\n";
  EXPECT_EQ(shapeDifference(ours, ours), "");
  EXPECT_EQ(shapeDifference(ours, theirs), "here: addr eth0 10.201.0.5");
  EXPECT_EQ(shapeDifference(theirs, ours), "prepared: addr eth0 10.201.0.5");
  EXPECT_EQ(shapeDifference("a\nb\n", "a\nc\n"), "here: b; prepared: c");
  EXPECT_EQ(shapeDifference("a\nb\n", "b\na\n"), "the same facts in another order");
  EXPECT_LE(shapeDifference(std::string(1000, 'x'), "y").size(), 2u * 200 + 20) << "bounded";
}

TEST(NetnsFromIp, EthZerosLayoutIsReadAndMistypedJsonIsNoException) {
  const std::string addr = R"([{"ifindex":1,"ifname":"lo","mtu":65536,"address":"00:00:00:00:00:00"},)"
                           R"({"ifindex":2,"ifname":"eth0","mtu":1500,"address":"02:4c:4d:c8:01:0a","addr_info":[)"
                           R"({"family":"inet","local":"10.200.1.10","prefixlen":16,"broadcast":"10.200.255.255"},)"
                           R"({"family":"inet6","local":"fe80::1","prefixlen":64}]}])";
  const std::string route = R"([{"dst":"default","gateway":"10.200.0.1","dev":"eth0"}])";
  auto l = layoutFromIp(addr, route);
  ASSERT_TRUE(l.ok()) << l.status().toString();
  EXPECT_EQ(l->hwaddr, "02:4c:4d:c8:01:0a");
  EXPECT_EQ(l->mtu, 1500);
  ASSERT_EQ(l->addresses.size(), 1u);
  EXPECT_EQ(l->addresses[0].ip, "10.200.1.10");
  EXPECT_EQ(l->addresses[0].prefixLen, 16);
  EXPECT_EQ(l->gateway, "10.200.0.1");
  EXPECT_EQ(layoutFromIp(R"([{"ifname":"lo"}])", "[]").status().code(), Code::kNotFound);
  // Wrong types where ip prints strings and numbers: read as absent.
  auto odd = layoutFromIp(R"([3,"s",null,{"ifname":"eth0","mtu":"x","address":5,"addr_info":{"a":1}}])",
                          R"([{"dev":"eth0","gateway":7}])");
  ASSERT_TRUE(odd.ok()) << odd.status().toString();
  EXPECT_EQ(odd->mtu, 0);
  EXPECT_TRUE(odd->addresses.empty());
  EXPECT_FALSE(checkLayout(*odd).ok());
  EXPECT_FALSE(layoutFromIp("{", "[]").ok());

  std::vector<std::string> ifnames;
  auto lines =
      shapeLinesFromIp({R"([{"ifname":".."},{"ifname":"a/b"},{"ifname":"eth0","linkinfo":[1]},7])", "[]",
                        R"([{"table":"local","type":"local","dst":"fe80::1"},[]])", "{}", "[]", "flush ruleset"},
                       &ifnames);
  ASSERT_FALSE(lines.ok()) << "rule-4 is not an array";
  ifnames.clear();
  lines = shapeLinesFromIp({R"([{"ifname":".."},{"ifname":"a/b"},{"ifname":"eth0","linkinfo":[1]},7])", "[]",
                            R"([{"table":"local","type":"local","dst":"fe80::1"},[]])", "[]", "[]", "flush ruleset"},
                           &ifnames);
  ASSERT_TRUE(lines.ok()) << lines.status().toString();
  EXPECT_EQ(ifnames, std::vector<std::string>{"eth0"}) << "only names that are one path component";
}

TEST(RestoreMtu, OneOffAsAPathMtuAndNeverAcrossIpv6sMinimum) {
  EXPECT_EQ(restoreMtu(1500), 1499);
  EXPECT_EQ(restoreMtu(9000), 8999);
  // A path MTU stops at 65535: loopback's 65536 must go below that.
  EXPECT_EQ(restoreMtu(kLoopbackMtu), 65534);
  EXPECT_EQ(restoreMtu(65535), 65534);
  EXPECT_EQ(restoreMtu(1281), 1280);
  // IPv6 leaves a link below 1280, IPv4 one below 68: up, not down.
  EXPECT_EQ(restoreMtu(1280), 1281);
  EXPECT_EQ(restoreMtu(68), 69);
}

TEST(RestoreMtu, LowersPlainLinksOfSaneMtusAndNotesAnIpv6MtuOfTheirOwn) {
  auto eth0 = lowerForRestore("eth0", 1500, 1500);
  ASSERT_TRUE(eth0);
  EXPECT_EQ(eth0->link, "eth0");
  EXPECT_EQ(eth0->mtu, 1500);
  EXPECT_EQ(eth0->lowered, 1499);
  EXPECT_FALSE(eth0->ipv6Mtu) << "the link's own: raising the link sets it";
  auto lo = lowerForRestore("lo", kLoopbackMtu, std::nullopt);
  ASSERT_TRUE(lo);
  EXPECT_EQ(lo->lowered, 65534);
  auto own = lowerForRestore("eth1", 9000, 1400);
  ASSERT_TRUE(own);
  EXPECT_EQ(own->ipv6Mtu, 1400);
  // Names off the grammar and MTUs out of range are left as they are.
  for (const char* bad : {"", "eth0/../x", "Eth0", "veth-x", "a-very-long-link-name"})
    EXPECT_FALSE(lowerForRestore(bad, 1500, std::nullopt)) << bad;
  EXPECT_FALSE(lowerForRestore("eth0", 67, std::nullopt));
  EXPECT_FALSE(lowerForRestore("eth0", 65537, std::nullopt));
  EXPECT_FALSE(lowerForRestore("eth0", -1, std::nullopt));
  EXPECT_FALSE(lowerForRestore("eth0", 1500, 9000)->ipv6Mtu) << "an IPv6 MTU above the link's is not one";
}

}  // namespace
}  // namespace lxmig::net
