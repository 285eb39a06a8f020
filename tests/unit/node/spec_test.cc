// A container's spec comes from flags, from a peer and from lxmig.json:
// Spec::check() holds every field to its grammar.
#include <gtest/gtest.h>

#include "lxmig/node/node.h"

namespace lxmig::node {
namespace {

Spec good() {
  Spec s;
  s.name = "web";
  s.ip = "10.200.1.10";
  s.hwaddr = "02:4c:4d:00:00:01";
  s.originNode = "n1";
  s.command = {"/usr/bin/python3", "-c", "print('multi\\nline is fine in argv')"};
  s.env = {"PATH=/usr/bin", "X="};
  s.binds = {{"/srv/data", "/data", true}};
  s.devices = {{"/dev/fuse", "/dev/fuse"}};
  return s;
}

TEST(SpecCheck, AGoodSpecPasses) { EXPECT_TRUE(good().check().ok()) << good().check().toString(); }

TEST(SpecCheck, EachFieldHasItsGrammar) {
  struct Case {
    const char* what;
    void (*spoil)(Spec&);
  };
  const Case cases[] = {
      {"name", [](Spec& s) { s.name = "../etc"; }},
      {"ip", [](Spec& s) { s.ip = "10.200.1.10\nlxc.hook.pre-start=/bin/sh"; }},
      {"hwaddr", [](Spec& s) { s.hwaddr = "02:4c:4d:00:00:0g"; }},
      {"origin", [](Spec& s) { s.originNode = "n1/../x"; }},
      {"env newline", [](Spec& s) { s.env = {"A=b\nlxc.hook.pre-start = /bin/sh"}; }},
      {"env name", [](Spec& s) { s.env = {"1A=b"}; }},
      {"env without =", [](Spec& s) { s.env = {"JUSTANAME"}; }},
      {"bind source",
       [](Spec& s) {
         s.binds = {{"/srv/../etc", "/data", true}};
       }},
      {"bind target",
       [](Spec& s) {
         s.binds = {{"/srv/data", "data", true}};
       }},
      {"device",
       [](Spec& s) {
         s.devices = {{"/dev/../etc/shadow", "/dev/x"}};
       }},
      {"command size", [](Spec& s) { s.command.assign(5000, "x"); }},
      {"extra address", [](Spec& s) { s.extraIps = {"10.200.1.11\nlxc.hook.pre-start=/bin/sh"}; }},
      {"extra address twice",
       [](Spec& s) {
         s.extraIps = {"10.200.1.11", "10.200.1.11"};
       }},
      {"extra address is the address", [](Spec& s) { s.extraIps = {"10.200.1.10"}; }},
      {"extra addresses",
       [](Spec& s) {
         for (int i = 0; i < 64; ++i) s.extraIps.push_back("10.200.2." + std::to_string(i + 1));
       }},
  };
  for (const auto& c : cases) {
    Spec s = good();
    c.spoil(s);
    Status st = s.check();
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.what << ": " << st.toString();
    EXPECT_EQ(st.message().find('\n'), std::string::npos) << c.what << ": one line: " << st.message();
  }
}

TEST(SpecCheck, StoredSpecsAreCheckedAndFieldsOfTheWrongTypeAreErrors) {
  EXPECT_TRUE(Spec::fromJson(good().toJson()).ok());
  EXPECT_EQ(Spec::fromJson(R"({"name": 5, "ip": "10.200.1.10"})").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Spec::fromJson(R"({"name": "web", "ip": "10.200.1.10", "env": ["A=b\nc"]})").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Spec::fromJson("[1, 2]").status().code(), Code::kInvalidArgument);
}

TEST(SpecCheck, TheInitAndThePidRangeTravelWithTheSpec) {
  Spec s = good();
  s.lxmigInit = true;
  s.pidBase = 17000;
  auto back = Spec::fromJson(s.toJson());
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_TRUE(back->lxmigInit);
  EXPECT_EQ(back->pidBase, 17000u);
  Spec p = Spec::fromProto(s.toProto());
  EXPECT_TRUE(p.lxmigInit);
  EXPECT_EQ(p.pidBase, 17000u);
  // An older spec has neither: its pid 1 is its command.
  auto old = Spec::fromJson(R"({"name": "web", "ip": "10.200.1.10"})");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->lxmigInit);
  EXPECT_EQ(old->pidBase, 0u);
  // A merged container's addresses.
  s.extraIps = {"10.200.1.11", "10.200.1.12"};
  ASSERT_TRUE(s.check().ok()) << s.check().toString();
  EXPECT_EQ(Spec::fromJson(s.toJson())->addresses(),
            (std::vector<std::string>{"10.200.1.10", "10.200.1.11", "10.200.1.12"}));
  EXPECT_EQ(Spec::fromProto(s.toProto()).extraIps, s.extraIps);
  EXPECT_TRUE(old->extraIps.empty());
  // The id map of a container with a user namespace of its own.
  s.idmapBase = 100000;
  s.idmapSize = 65536;
  ASSERT_TRUE(s.check().ok()) << s.check().toString();
  EXPECT_EQ(Spec::fromJson(s.toJson())->idmapBase, 100000u);
  EXPECT_EQ(Spec::fromProto(s.toProto()).idmapSize, 65536u);
  EXPECT_EQ(old->idmapSize, 0u);
  for (auto [base, size] :
       {std::pair<uint32_t, uint32_t>{0, 65536}, {100000, 0}, {100000, 100}, {4294967000u, 65536}}) {
    s.idmapBase = base;
    s.idmapSize = size;
    EXPECT_EQ(s.check().code(), Code::kInvalidArgument) << base << ":" << size;
  }
  s.idmapBase = s.idmapSize = 0;
  s.pidBase = 1u << 22;
  EXPECT_EQ(s.check().code(), Code::kInvalidArgument);
  EXPECT_EQ(Spec::fromJson(R"({"name": "web", "ip": "10.200.1.10", "pid_base": -1})").status().code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace lxmig::node
