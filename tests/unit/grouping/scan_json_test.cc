// The JSON text of a scan parses, holds every field, and survives names
// that are not UTF-8 or carry quotes and control characters.
#include "lxmig/grouping/scan_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace lxmig::grouping {
namespace {

TEST(ScanJsonTest, ParsesAndEscapes) {
  Scan scan;
  Process a;
  a.pid = 10;
  a.ppid = 1;
  a.comm = "we\"ird\\na\x01me\xff";
  a.container = "web";
  a.netSockets = {"tcp 127.0.0.1:80 LISTEN (fd 3)"};
  Process b;
  b.pid = 11;
  b.ppid = 10;
  b.comm = "caf\xc3\xa9";
  scan.processes = {{10, a}, {11, b}};
  Edge e;
  e.kind = kPipe;
  e.object = "pipe:[5]";
  e.a = {10, "fd 1"};
  e.b = {11, "fd 0"};
  scan.edges = {e};
  scan.groups = buildGroups(scan.processes, scan.edges);
  scan.unreadable = {"pid 7: maps: Permission denied"};
  std::string text = toJsonText(scan, scan.groups, "n1");
  auto j = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << text;
  EXPECT_EQ(j["node"], "n1");
  EXPECT_EQ(j["processes"], 2);
  EXPECT_EQ(j["unreadable"][0], "pid 7: maps: Permission denied");
  ASSERT_EQ(j["groups"].size(), 1u);
  const auto& g = j["groups"][0];
  EXPECT_EQ(g["verdict"], "spans-containers");
  EXPECT_EQ(g["containers"], (nlohmann::json{"", "web"}));
  ASSERT_EQ(g["members"].size(), 2u);
  EXPECT_EQ(g["members"][0]["comm"], "we\"ird\\na\x01me\xef\xbf\xbd");
  EXPECT_EQ(g["members"][1]["comm"], "caf\xc3\xa9");
  EXPECT_EQ(g["members"][0]["net_sockets"][0], "tcp 127.0.0.1:80 LISTEN (fd 3)");
  ASSERT_EQ(g["edges"].size(), 1u);
  EXPECT_EQ(g["edges"][0]["kind"], "pipe");
  EXPECT_EQ(g["edges"][0]["crosses_container"], true);
  EXPECT_EQ(g["edges"][0]["a"]["how"], "fd 1");
  EXPECT_EQ(g["edges"][0]["b"]["pid"], 11);
}

TEST(ScanJsonTest, EmptySelection) {
  Scan scan;
  auto j = nlohmann::json::parse(toJsonText(scan, {}, "n2"), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_TRUE(j["groups"].empty());
}

}  // namespace
}  // namespace lxmig::grouping
