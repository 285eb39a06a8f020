// Errors and warnings on stderr: one line each, as text or (--json) as one
// JSON object a script can parse, also for what the parser refuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "command_line.h"
#include "output/errors.h"

namespace lxmig::cli {
namespace {

TEST(ErrorsTest, TextLinesNameWhatFailed) {
  EXPECT_EQ(errorLine("rm web", "no container `web` on any node", 1, false),
            "lxmig: rm web: no container `web` on any node");
  EXPECT_EQ(errorLine("", "unknown command `x`", 2, false), "lxmig: unknown command `x`");
  EXPECT_EQ(warningLine("ps", "unreachable node n3", false), "lxmig: warning: ps: unreachable node n3");
}

TEST(ErrorsTest, ControlCharactersOfAReasonAreShownAndItsLinesKept) {
  // A refusal quotes a process's name: it may hold an escape sequence.
  EXPECT_EQ(errorLine("migrate web", "pid 7 'x\x1b[2J' holds a lock\npid 8 'y\r' too", 1, false),
            "lxmig: migrate web: pid 7 'x\\x1b[2J' holds a lock\npid 8 'y\\x0d' too");
  EXPECT_EQ(warningLine("ps", "node \x07n3", false), "lxmig: warning: ps: node \\x07n3");
}

TEST(ErrorsTest, JsonLinesParseBackWithTheExitCode) {
  const std::string line = errorLine("migrate web", "refused: \"n2\" has no room\nsecond line", 1, true);
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["error"], "migrate web: refused: \"n2\" has no room\nsecond line");
  EXPECT_EQ(j["code"], 1);
  auto w = nlohmann::json::parse(warningLine("ps", "unreachable node n3", true));
  EXPECT_EQ(w["warning"], "ps: unreachable node n3");
  EXPECT_FALSE(w.contains("code"));
  // A name from a peer that is not UTF-8 does not throw.
  auto bad = nlohmann::json::parse(errorLine("rm \xff\xfe", "gone", 2, true));
  EXPECT_EQ(bad["code"], 2);
}

TEST(ErrorsTest, UsageMessagesBecomeOneLine) {
  EXPECT_EQ(usageMessage("lxmig: unknown command `pss` (see lxmig --help)\n"),
            "unknown command `pss` (see lxmig --help)");
  EXPECT_EQ(usageMessage("--to is required\nRun with --help for more information.\n"), "--to is required");
  CLI::App app{"lxmig: the test"};
  app.require_subcommand(1);
  app.add_subcommand("ps", "list");
  std::ostringstream out, err;
  const char* argv[] = {"lxmig"};
  EXPECT_EQ(parseCommandLine(app, 1, argv, out, err), 2);
  EXPECT_EQ(usageMessage(err.str()), "no command given (see lxmig --help)") << err.str();
}

}  // namespace
}  // namespace lxmig::cli
