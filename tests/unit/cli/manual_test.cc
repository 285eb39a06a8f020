// Manual pages from the command line's definition: a page per visible
// verb with its arguments, options, subcommands and the examples its help
// ends with, in roff that escapes what roff would read as its own.
#include <gtest/gtest.h>

#include "manual.h"

namespace lxmig::cli {
namespace {

class ManualTest : public ::testing::Test {
 protected:
  ManualTest() {
    app_.add_option("--node", node_, "node to act on");
    app_.add_flag("--json", json_, "machine-readable output");
    auto* migrate = app_.add_subcommand("migrate", "live-migrate a container");
    migrate->add_option("name", name_, "container name")->required();
    migrate->add_option("--to", to_, "target node")->required();
    migrate->add_option("--max-rounds", rounds_, "round limit")->default_val(10);
    withExamples(migrate, {"lxmig migrate web --to n2", ".hidden \\ stays text"});
    auto* fw = app_.add_subcommand("fw", "firewall rules");
    fw->add_subcommand("list", "list the rules")->add_option("name", name_, "container name")->required();
    app_.add_subcommand("__complete", "");  // hidden: no description
  }
  const ManualPage* page(const std::vector<ManualPage>& pages, const std::string& file) {
    for (const auto& p : pages)
      if (p.file == file) return &p;
    return nullptr;
  }
  CLI::App app_{"lxmig: live migration"};
  std::string node_, name_, to_;
  int rounds_ = 10;
  bool json_ = false;
};

TEST_F(ManualTest, OnePagePerVisibleVerbAndOneForLxmig) {
  auto pages = manualPages(app_, "1.2.3");
  ASSERT_EQ(pages.size(), 3u);
  const ManualPage* main = page(pages, "lxmig.1");
  ASSERT_NE(main, nullptr);
  EXPECT_NE(main->roff.find(".TH LXMIG 1 \"\" \"lxmig 1.2.3\""), std::string::npos) << main->roff;
  EXPECT_NE(main->roff.find("lxmig \\- live migration"), std::string::npos) << main->roff;
  EXPECT_NE(main->roff.find("\\fBlxmig\\-migrate\\fR(1)"), std::string::npos) << main->roff;
  EXPECT_EQ(main->roff.find("__complete"), std::string::npos);
  EXPECT_NE(main->roff.find(".SH EXIT STATUS"), std::string::npos);
}

TEST_F(ManualTest, AVerbsPageHasItsArgumentsOptionsAndExamples) {
  auto pages = manualPages(app_, "1.2.3");
  const ManualPage* m = page(pages, "lxmig-migrate.1");
  ASSERT_NE(m, nullptr);
  const std::string& r = m->roff;
  EXPECT_NE(r.find(".SH NAME\nlxmig\\-migrate \\- live\\-migrate a container"), std::string::npos) << r;
  EXPECT_NE(r.find("\\fBmigrate\\fR [\\fIOPTIONS\\fR] \\fIname\\fR"), std::string::npos) << r;
  EXPECT_NE(r.find("\\fB\\-\\-to\\fR \\fITEXT\\fR\ntarget node (required)"), std::string::npos) << r;
  EXPECT_NE(r.find("round limit (default: 10)"), std::string::npos) << r;
  EXPECT_NE(r.find(".SH GLOBAL OPTIONS"), std::string::npos);
  EXPECT_NE(r.find("\\fB\\-\\-node\\fR"), std::string::npos);
  EXPECT_EQ(r.find("\\-\\-help"), std::string::npos) << "--help is not listed";
  // Examples as they are, escaped: a leading '.' guarded, '\' as \e.
  EXPECT_NE(r.find(".SH EXAMPLES\n.nf\nlxmig migrate web \\-\\-to n2\n\\&.hidden \\e stays text\n.fi\n"),
            std::string::npos)
      << r;
  // The help shows the same examples.
  EXPECT_NE(app_.get_subcommand("migrate")->help().find("Examples:\n  lxmig migrate web --to n2\n"), std::string::npos);
}

TEST_F(ManualTest, SubcommandsAreSectionsOfTheirVerbsPage) {
  auto pages = manualPages(app_, "1.2.3");
  const ManualPage* fw = page(pages, "lxmig-fw.1");
  ASSERT_NE(fw, nullptr);
  EXPECT_NE(fw->roff.find(".SH COMMANDS\n.SS lxmig fw \\fBlist\\fR \\fIname\\fR\nlist the rules\n"), std::string::npos)
      << fw->roff;
  EXPECT_EQ(fw->roff.find(".SH EXAMPLES"), std::string::npos) << "none given, none made up";
}

}  // namespace
}  // namespace lxmig::cli
