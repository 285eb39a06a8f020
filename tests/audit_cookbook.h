// The cookbook of docs/audit.md: each "### title" of its Cookbook section
// with the ```sql block under it. Read by the unit tests (every query runs
// on a fixture) and by the audit benchmark (every query is timed).
#pragma once

#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace lxmig::testing {

inline std::vector<std::pair<std::string, std::string>> cookbookQueries(const std::string& markdown) {
  std::vector<std::pair<std::string, std::string>> out;
  const size_t start = markdown.find("## Cookbook");
  if (start == std::string::npos) return out;
  std::istringstream in(markdown.substr(start));
  std::string line, title, sql;
  bool inSql = false;
  while (std::getline(in, line)) {
    if (line.rfind("### ", 0) == 0) {
      title = line.substr(4);
    } else if (line == "```sql") {
      inSql = true;
      sql.clear();
    } else if (inSql && line == "```") {
      inSql = false;
      out.emplace_back(title, sql);
    } else if (inSql) {
      sql += line + "\n";
    }
  }
  return out;
}

}  // namespace lxmig::testing
