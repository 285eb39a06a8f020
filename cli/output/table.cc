#include "output/table.h"

#include <cctype>
#include <utility>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"

namespace lxmig::cli {

Table::Table(std::string_view layout) {
  std::string text;
  for (size_t i = 0; i < layout.size(); ++i) {
    if (layout[i] == '%') {
      size_t j = i + 1;
      bool left = j < layout.size() && layout[j] == '-';
      if (left) ++j;
      int width = 0;
      for (; j < layout.size() && std::isdigit(static_cast<unsigned char>(layout[j])); ++j)
        width = width * 10 + (layout[j] - '0');
      if (j < layout.size() && layout[j] == 's') {
        if (!text.empty()) pieces_.push_back({std::exchange(text, {})});
        pieces_.push_back({"", width, left});
        i = j;
        continue;
      }
    }
    text += layout[i];
  }
  if (!text.empty()) pieces_.push_back({std::move(text)});
}

std::string Table::row(const std::vector<std::string>& cells) const {
  std::string out;
  size_t next = 0;
  for (const auto& p : pieces_) {
    if (p.width < 0) {
      out += p.text;
      continue;
    }
    const std::string cell = next < cells.size() ? printable(cells[next]) : "";
    ++next;
    const std::string pad(cell.size() < static_cast<size_t>(p.width) ? p.width - cell.size() : 0, ' ');
    out += p.left ? cell + pad : pad + cell;
  }
  return out;
}

std::string formatMs(int64_t ms) { return ms < 0 ? "-" : std::to_string(ms) + " ms"; }

std::string formatRate(double bytesPerSecond) { return humanBytes(static_cast<uint64_t>(bytesPerSecond)) + "/s"; }

}  // namespace lxmig::cli
