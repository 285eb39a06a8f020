// Table lays lines out as printf would with the same pattern.
#include <gtest/gtest.h>

#include <cstdio>

#include "output/table.h"

namespace lxmig::cli {
namespace {

TEST(Table, MatchesPrintf) {
  const char* layout = "  %-8s %10s  %s|\n";
  char want[128];
  std::snprintf(want, sizeof want, layout, "NAME", "SIZE", "NOTE");
  EXPECT_EQ(Table(layout).row({"NAME", "SIZE", "NOTE"}), want);
  std::snprintf(want, sizeof want, layout, "a-very-long-name", "12345678901", "");
  EXPECT_EQ(Table(layout).row({"a-very-long-name", "12345678901", ""}), want);
}

TEST(Table, MissingCellsAreEmptyAndOtherPercentsAreText) {
  EXPECT_EQ(Table("%-3s|%3s|\n").row({"a"}), "a  |   |\n");
  EXPECT_EQ(Table("100% %d %s").row({"x"}), "100% %d x");
}

TEST(Table, ControlCharactersOfACellAreShownNotSent) {
  // A process may name itself with an escape sequence or a newline.
  EXPECT_EQ(Table("%s|%s\n").row({"a\x1b[2Jb", "x\ny\xc2\x9b"}), "a\\x1b[2Jb|x\\x0ay\\xc2\\x9b\n");
  EXPECT_EQ(Table("%s\n").row({"caf\xc3\xa9"}), "caf\xc3\xa9\n");
}

TEST(Format, MsAndRate) {
  EXPECT_EQ(formatMs(12), "12 ms");
  EXPECT_EQ(formatMs(0), "0 ms");
  EXPECT_EQ(formatMs(-1), "-");
  EXPECT_EQ(formatRate(1024.0 * 1024), "1.0 MiB/s");
}

}  // namespace
}  // namespace lxmig::cli
