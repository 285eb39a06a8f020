// A fresh directory under /tmp for one test, removed with everything in it
// when the object goes (also after a failed assertion).
//
//   TempDir tmp("lxmig-store-test");
//   ASSERT_TRUE(tmp.ok());
//   auto log = AuditLog::open(tmp.path() + "/audit.db");
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace lxmig::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string t = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(t.data())) path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lxmig::testing
