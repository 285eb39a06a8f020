// Completion from the command line's definition (completion.h): verbs and
// options of the verb reached and the global ones, node names after
// --node/--to and for a `node` argument, container names for a `name`
// argument, nothing after `--` or for an option's free value.
#include "completion.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace lxmig::cli {
namespace {

class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app_.add_option("--node", s_, "node");
    app_.add_flag("--json", b_, "json");
    auto* migrate = app_.add_subcommand("migrate", "move a container");
    migrate->add_option("name", s_, "container");
    migrate->add_option("--to", s_, "target node");
    migrate->add_option("--mode", s_, "mode");
    migrate->add_flag("--no-conntrack", b_, "flag");
    auto* drain = app_.add_subcommand("drain", "empty a node");
    drain->add_option("node", s_, "node");
    auto* cluster = app_.add_subcommand("cluster", "certificates");
    cluster->add_subcommand("init", "make the CA");
    app_.add_subcommand("hidden", "");
    names_.nodes = [] { return std::vector<std::string>{"n1", "n2"}; };
    names_.containers = [] { return std::vector<std::string>{"db", "web"}; };
  }
  std::vector<std::string> after(const std::vector<std::string>& typed) { return completions(app_, typed, names_); }
  static bool has(const std::vector<std::string>& v, const std::string& w) {
    return std::find(v.begin(), v.end(), w) != v.end();
  }

  CLI::App app_{"test"};
  std::string s_;
  bool b_ = false;
  CompletionNames names_;
};

TEST_F(CompletionTest, VerbsAndGlobalOptionsFirstNeverAHiddenVerb) {
  auto w = after({});
  for (const char* x : {"migrate", "drain", "cluster", "--node", "--json", "--help"}) EXPECT_TRUE(has(w, x)) << x;
  EXPECT_FALSE(has(w, "hidden"));
  EXPECT_FALSE(has(w, "n1")) << "no names where a verb goes";
}

TEST_F(CompletionTest, AVerbsArgumentsAndOptions) {
  auto w = after({"migrate"});
  EXPECT_TRUE(has(w, "web") && has(w, "db")) << "its `name` argument is a container";
  for (const char* x : {"--to", "--mode", "--no-conntrack", "--node", "--json"}) EXPECT_TRUE(has(w, x)) << x;
  EXPECT_FALSE(has(w, "drain"));
  auto named = after({"migrate", "web"});
  EXPECT_FALSE(has(named, "web")) << "the name is given";
  EXPECT_TRUE(has(named, "--to"));
  EXPECT_EQ(after({"migrate", "web", "--to"}), (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ(after({"--node"}), (std::vector<std::string>{"n1", "n2"}));
  EXPECT_TRUE(after({"migrate", "web", "--mode"}).empty()) << "a free value";
  EXPECT_TRUE(has(after({"migrate", "web", "--mode", "pre-copy"}), "--to"));
  EXPECT_TRUE(has(after({"drain"}), "n2")) << "its `node` argument";
  EXPECT_TRUE(has(after({"cluster"}), "init"));
  EXPECT_TRUE(after({"migrate", "web", "--"}).empty());
}

}  // namespace
}  // namespace lxmig::cli
