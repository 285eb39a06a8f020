// How `lxmig` ends when no verb runs: help and version exit 0, usage
// errors exit 2 with one message, an unknown verb with lxmig's own line.
#include <gtest/gtest.h>

#include <sstream>

#include "command_line.h"

namespace lxmig::cli {
namespace {

// An app shaped like lxmig's: global options before or after the verb.
class CommandLineTest : public ::testing::Test {
 protected:
  CommandLineTest() {
    app_.require_subcommand(1);
    app_.fallthrough(true);
    app_.add_option("--node", node_, "node");
    app_.add_flag("--json", json_, "JSON");
    app_.set_version_flag("--version", "lxmig 1.2.3");
    ps_ = app_.add_subcommand("ps", "list");
    auto* rm = app_.add_subcommand("rm", "remove");
    rm->add_option("name", name_, "container name")->required();
    auto* fw = app_.add_subcommand("fw", "firewall");
    fw->require_subcommand(1);
    fw->add_subcommand("list", "rules");
  }

  std::optional<int> parse(std::vector<const char*> args) {
    args.insert(args.begin(), "lxmig");
    return parseCommandLine(app_, static_cast<int>(args.size()), args.data(), out_, err_);
  }

  CLI::App app_{"lxmig"};
  CLI::App* ps_ = nullptr;
  std::string node_, name_;
  bool json_ = false;
  std::ostringstream out_, err_;
};

TEST_F(CommandLineTest, AVerbRunsWithGlobalOptionsOnEitherSide) {
  EXPECT_EQ(parse({"--node", "n1", "ps", "--json"}), std::nullopt) << err_.str();
  EXPECT_TRUE(ps_->parsed());
  EXPECT_EQ(node_, "n1");
  EXPECT_TRUE(json_);
  EXPECT_EQ(out_.str() + err_.str(), "");
}

TEST_F(CommandLineTest, UnknownVerbIsOneLineAndExits2) {
  EXPECT_EQ(parse({"frobnicate"}), 2);
  EXPECT_EQ(err_.str(), "lxmig: unknown command `frobnicate` (see lxmig --help)\n");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandLineTest, UnknownVerbAfterGlobalOptions) {
  EXPECT_EQ(parse({"--node", "n1", "--json", "pss"}), 2);
  EXPECT_EQ(err_.str(), "lxmig: unknown command `pss` (see lxmig --help)\n");
}

TEST_F(CommandLineTest, MissingVerbPrintsHelpAndExits2) {
  EXPECT_EQ(parse({}), 2);
  EXPECT_EQ(err_.str(), app_.help());
  err_.str("");
  EXPECT_EQ(parse({"--node", "n1"}), 2);
  EXPECT_NE(err_.str().find("Usage:"), std::string::npos) << err_.str();
}

TEST_F(CommandLineTest, BadFlagsKeepCli11sMessageAndExit2) {
  EXPECT_EQ(parse({"--bogus"}), 2);
  EXPECT_EQ(err_.str().substr(0, err_.str().find('\n')), "The following argument was not expected: --bogus");
  err_.str("");
  EXPECT_EQ(parse({"ps", "--bogus"}), 2);
  EXPECT_NE(err_.str().find("--bogus"), std::string::npos) << err_.str();
}

TEST_F(CommandLineTest, VerbErrorsExit2) {
  EXPECT_EQ(parse({"rm"}), 2);
  EXPECT_NE(err_.str().find("name is required"), std::string::npos) << err_.str();
  err_.str("");
  EXPECT_EQ(parse({"fw"}), 2);
  EXPECT_NE(err_.str().find("A subcommand is required"), std::string::npos) << err_.str();
  err_.str("");
  EXPECT_EQ(parse({"--node"}), 2);
  EXPECT_NE(err_.str().find("--node"), std::string::npos) << err_.str();
}

TEST_F(CommandLineTest, VersionAndHelpExit0OnStdout) {
  EXPECT_EQ(parse({"--version"}), 0);
  EXPECT_EQ(out_.str(), "lxmig 1.2.3\n");
  out_.str("");
  EXPECT_EQ(parse({"--help"}), 0);
  EXPECT_NE(out_.str().find("Usage:"), std::string::npos) << out_.str();
  EXPECT_EQ(err_.str(), "");
}

}  // namespace
}  // namespace lxmig::cli
