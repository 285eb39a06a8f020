// What a peer's firewall export may hold (net::importBatch, pure): the
// chain and address are the migration's, and the rules only filter.
#include <gtest/gtest.h>

#include <string>

#include "lxmig/net/firewall.h"

namespace lxmig::net {
namespace {

std::string doc(const std::string& name, const std::string& ip, const std::string& rules) {
  return R"({"container":")" + name + R"(","ip":")" + ip + R"(","rules":[)" + rules + "]}";
}
const std::string kAccept80 =
    R"({"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":80}},)"
    R"({"accept":null}],"comment":"web"})";

Status import(const std::string& exported, const std::string& name = "web", const std::string& ip = "10.200.1.10") {
  return importBatch("lxmig", name, ip, exported, false).status();
}

TEST(FirewallImport, AnOrdinaryChainBecomesOneBatch) {
  auto b = importBatch("lxmig", "web", "10.200.1.10", doc("web", "10.200.1.10", kAccept80), true);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  EXPECT_NE(b->find(R"("chain":"in-web")"), std::string::npos) << *b;
  EXPECT_NE(b->find(R"("comment":"web")"), std::string::npos) << *b;
  EXPECT_NE(b->find(R"("delete")"), std::string::npos) << "the stale element goes";
}

TEST(FirewallImport, TheChainAndAddressAreTheMigrations) {
  EXPECT_EQ(import(doc("db", "10.200.1.10", kAccept80)).code(), Code::kInvalidArgument);
  EXPECT_EQ(import(doc("web", "10.200.1.11", kAccept80)).code(), Code::kInvalidArgument);
  EXPECT_EQ(import(doc("web", "10.200.1.10", kAccept80), "../x").code(), Code::kInvalidArgument);
  EXPECT_EQ(import(doc("web", "10.200.1.10", kAccept80), "web", "10.200.1.10; flush ruleset").code(),
            Code::kInvalidArgument);
}

TEST(FirewallImport, RulesOnlyFilter) {
  const char* bad[] = {
      // a dynamic update of lxmig's own blocked set
      R"({"expr":[{"set":{"op":"delete","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@blocked"}}]})",
      // a match against a named set
      R"({"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@blocked"}},)"
      R"({"accept":null}]})",
      // jumps
      R"({"expr":[{"jump":{"target":"forward"}}]})",
      R"({"expr":[{"accept":null},{"goto":{"target":"in-db"}}]})",
      // rewriting a packet
      R"({"expr":[{"mangle":{"key":{"payload":{"protocol":"ip","field":"daddr"}},"value":"10.0.0.1"}}]})",
      // NAT and queueing
      R"({"expr":[{"dnat":{"addr":"10.0.0.1"}}]})",
      R"({"expr":[{"queue":{"num":1}}]})",
      // shapes
      R"({"expr":[]})",
      R"({"expr":"accept"})",
      R"({"noexpr":1})",
      R"({"expr":[{"accept":null,"drop":null}]})",
      R"({"expr":[{"accept":null}],"comment":5})",
      // keys that are no nftables word (found by the fuzzer)
      R"({"expr":[{"match":{"@p":"in","left":{"ct":{"key":"state"}},"right":"established"}},{"accept":null}]})",
      R"({"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"valu\u007f":1}}]})",
  };
  for (const char* r : bad) EXPECT_EQ(import(doc("web", "10.200.1.10", r)).code(), Code::kInvalidArgument) << r;
  const char* good[] = {
      R"({"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":1}}]})",
      R"({"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"established"}},)"
      R"({"counter":{"packets":0,"bytes":0}},{"accept":null}]})",
      R"({"expr":[{"limit":{"rate":10,"burst":5,"per":"second"}},{"log":{"prefix":"x"}},{"drop":null}]})",
      R"({"expr":[{"match":{"op":"==","left":{"tcp option":{"name":"maxseg","field":"size"}},"right":1460}},)"
      R"({"accept":null}]})",
  };
  for (const char* r : good) EXPECT_TRUE(import(doc("web", "10.200.1.10", r)).ok()) << r;
}

TEST(FirewallImport, MalformedLargeOrDeepDocumentsAreRefused) {
  for (const std::string& d :
       {std::string("{not json"), std::string(R"({"container":5,"ip":"10.200.1.10","rules":[]})"),
        std::string(R"({"container":"web","ip":"10.200.1.10","rules":{}})"), std::string(R"([1,2,3])")})
    EXPECT_EQ(import(d).code(), Code::kInvalidArgument) << d;
  EXPECT_EQ(import(doc("web", "10.200.1.10", std::string(10000, '[') + std::string(10000, ']'))).code(),
            Code::kInvalidArgument);
  std::string many;
  for (int i = 0; i < 1001; ++i) many += (i ? "," : "") + kAccept80;
  EXPECT_EQ(import(doc("web", "10.200.1.10", many)).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace lxmig::net
