#include "lxmig/base/status.h"

#include <gtest/gtest.h>

namespace lxmig {
namespace {

Result<int> half(int v) {
  if (v % 2) return invalidArgument("odd value " + std::to_string(v));
  return v / 2;
}

Result<int> quarter(int v) {
  LXMIG_ASSIGN_OR_RETURN(int h, half(v));
  LXMIG_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

TEST(StatusTest, ErrnoCarriesObjectAndCode) {
  Status s = Status::fromErrno("open", "/proc/42/fd", ENOENT);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.sysErrno(), ENOENT);
  EXPECT_EQ(s.message(), "open `/proc/42/fd`: No such file or directory");
  Status c = s.withContext("scan pid 42");
  EXPECT_EQ(c.message(), "scan pid 42: open `/proc/42/fd`: No such file or directory");
  EXPECT_EQ(c.code(), Code::kNotFound);
  EXPECT_EQ(Status::fromErrno("x", "y", EACCES).code(), Code::kPermissionDenied);
  EXPECT_EQ(Status::fromErrno("x", "y", ENOSPC).code(), Code::kResourceExhausted);
}

TEST(StatusTest, ResultPropagates) {
  auto ok = quarter(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  auto bad = quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd value 3");
}

TEST(StatusTest, OkStatusIntoResultIsInternalError) {
  Result<int> r{Status()};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace lxmig
