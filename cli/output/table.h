// Tables as the verbs print them: each line laid out by one printf-like
// pattern, so a header and its rows line up by construction; and the cell
// formats they share (durations, rates).
//
//   Table t("%-20s %-8s %10s\n");
//   std::cout << t.row({"NAME", "NODE", "MEMORY"});
//   std::cout << t.row({c.name(), c.node(), humanBytes(c.memory_bytes())});
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lxmig::cli {

class Table {
 public:
  // `layout`: literal text and one %s, %Ns or %-Ns per column, as printf
  // reads them (N a minimum width, '-' to pad on the right; a wider cell is
  // not cut).
  explicit Table(std::string_view layout);
  // One line of the cells, one per column in order (a missing one is empty);
  // their control characters shown as \xNN (grammar.h printable).
  std::string row(const std::vector<std::string>& cells) const;

 private:
  struct Piece {
    std::string text;   // literal text (when width < 0)
    int width = -1;     // a column's minimum width
    bool left = false;  // pad on the right
  };
  std::vector<Piece> pieces_;
};

// "12 ms", or "-" for a duration not known (negative).
std::string formatMs(int64_t ms);
// "1.5 MiB/s"
std::string formatRate(double bytesPerSecond);

}  // namespace lxmig::cli
