#include "output/rows.h"

#include <algorithm>

namespace lxmig::cli {

using store::Cell;

store::Rows rowsFromReply(const v1::AuditQueryReply& r) {
  store::Rows out;
  out.columns.assign(r.columns().begin(), r.columns().end());
  out.truncated = r.truncated();
  out.elapsedMs = r.elapsed_ms();
  for (const auto& row : r.rows()) {
    std::vector<Cell> cells;
    for (const auto& c : row.cells()) {
      switch (c.value_case()) {
        case v1::AuditCell::kInteger:
          cells.push_back(Cell::of(static_cast<int64_t>(c.integer())));
          break;
        case v1::AuditCell::kReal:
          cells.push_back(Cell::of(c.real()));
          break;
        case v1::AuditCell::kText:
          cells.push_back(Cell::of(c.text()));
          break;
        case v1::AuditCell::kBlob: {
          Cell b = Cell::of(c.blob());
          b.kind = Cell::Kind::kBlob;
          cells.push_back(std::move(b));
          break;
        }
        default:
          cells.push_back(Cell::null());
      }
    }
    out.rows.push_back(std::move(cells));
  }
  return out;
}

namespace {

// A value on one line of a terminal: control characters (C0, DEL, C1 in
// UTF-8) shown as '?'.
std::string shown(const Cell& c, size_t width) {
  std::string s = c.str();
  for (size_t i = 0; i < s.size(); ++i) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u < 0x20 || u == 0x7f) s[i] = '?';
    if (u == 0xc2 && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xe0) == 0x80) s.replace(i, 2, "?");
  }
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

constexpr size_t kMaxWidth = 60;

}  // namespace

void printRowsTable(std::ostream& out, const store::Rows& rows) {
  std::vector<size_t> width;
  for (const auto& c : rows.columns) width.push_back(std::min(std::max<size_t>(c.size(), 1), kMaxWidth));
  for (const auto& r : rows.rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], std::min(r[i].str().size(), kMaxWidth));
  auto line = [&](const std::vector<std::string>& cells, const std::vector<bool>& right) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string pad(width[i] > cells[i].size() ? width[i] - cells[i].size() : 0, ' ');
      l += (i ? "  " : "") + (right[i] ? pad + cells[i] : cells[i] + (i + 1 < cells.size() ? pad : ""));
    }
    out << l << "\n";
  };
  std::vector<std::string> head;
  for (const auto& c : rows.columns) {
    std::string h = c;
    std::transform(h.begin(), h.end(), h.begin(), ::toupper);
    head.push_back(h.substr(0, kMaxWidth));
  }
  line(head, std::vector<bool>(head.size(), false));
  for (const auto& r : rows.rows) {
    std::vector<std::string> cells;
    std::vector<bool> right;
    for (const auto& c : r) {
      cells.push_back(shown(c, kMaxWidth));
      right.push_back(c.kind == Cell::Kind::kInteger || c.kind == Cell::Kind::kReal);
    }
    line(cells, right);
  }
}

void printRowsCsv(std::ostream& out, const store::Rows& rows) {
  auto field = [](const std::string& v) {
    if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (size_t i = 0; i < rows.columns.size(); ++i) out << (i ? "," : "") << field(rows.columns[i]);
  out << "\r\n";
  for (const auto& r : rows.rows) {
    for (size_t i = 0; i < r.size(); ++i) out << (i ? "," : "") << field(r[i].str());
    out << "\r\n";
  }
}

nlohmann::json rowsJson(const store::Rows& rows) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : rows.rows) {
    nlohmann::json row = nlohmann::json::array();
    for (const auto& c : r) {
      switch (c.kind) {
        case Cell::Kind::kNull:
          row.push_back(nullptr);
          break;
        case Cell::Kind::kInteger:
          row.push_back(c.integer);
          break;
        case Cell::Kind::kReal:
          row.push_back(c.real);
          break;
        default:
          row.push_back(c.text);
      }
    }
    arr.push_back(std::move(row));
  }
  return {{"columns", rows.columns}, {"rows", arr}, {"truncated", rows.truncated}};
}

}  // namespace lxmig::cli
