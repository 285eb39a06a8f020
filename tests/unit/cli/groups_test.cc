// `lxmig groups` prints what the scanned processes chose to be called: names,
// paths and socket summaries reach the terminal shown, never sent.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "output/groups.h"

namespace lxmig::cli {
namespace {

nlohmann::json scanWithHostileNames() {
  const nlohmann::json member = {{"pid", 42},
                                 {"ppid", 1},
                                 {"comm", "ok\x1b[2J\nfake"},
                                 {"container", "web"},
                                 {"net_sockets", {"tcp 10.0.0.2:80\r"}}};
  const nlohmann::json edge = {{"kind", "unix-socket"},
                               {"a", {{"pid", 42}, {"how", "fd 3"}}},
                               {"b", {{"pid", 43}, {"how", "fd 4"}}},
                               {"object", "socket:[1]"},
                               {"path", "/run/\x07sock"},
                               {"crosses_container", false}};
  return {{"node", "n1"},
          {"processes", 2},
          {"duration_ms", 3},
          {"groups",
           {{{"id", "g1"},
             {"verdict", "movable"},
             {"why", "shares \x1b]0;x\x07"},
             {"containers", {"web"}},
             {"members", {member}},
             {"edges", {edge}}}}},
          {"unreadable", {"/proc/44/fd: \x1b[K"}}};
}

TEST(Groups, TableShowsControlCharactersOfTheScannedProcessesAsText) {
  const std::string text = renderGroupsTable(scanWithHostileNames());
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  EXPECT_NE(text.find("ok\\x1b[2J\\x0afake"), std::string::npos) << text;
  EXPECT_NE(text.find("/run/\\x07sock"), std::string::npos) << text;
  EXPECT_NE(text.find("  why: shares \\x1b]0;x\\x07\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  /proc/44/fd: \\x1b[K\n"), std::string::npos) << text;
}

TEST(Groups, DotLabelsAreOneQuotedLine) {
  const std::string dot = renderGroupsDot(scanWithHostileNames());
  EXPECT_EQ(dot.find('\x1b'), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"42 ok\\\\x1b[2J\\\\x0afake\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"unix-socket /run/\\\\x07sock\""), std::string::npos) << dot;
}

}  // namespace
}  // namespace lxmig::cli
