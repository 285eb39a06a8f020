// Argument values the CLI parses itself: --max-downtime and --bind.
#include <gtest/gtest.h>

#include "args.h"

namespace lxmig::cli {
namespace {

TEST(ParseDurationMs, MillisecondsSecondsAndBareNumbers) {
  EXPECT_EQ(*parseDurationMs("300ms"), 300);
  EXPECT_EQ(*parseDurationMs("0.5s"), 500);
  EXPECT_EQ(*parseDurationMs("2s"), 2000);
  EXPECT_EQ(*parseDurationMs("250"), 250);
  EXPECT_EQ(*parseDurationMs("0"), 0);  // the caller decides whether 0 makes sense
  EXPECT_EQ(*parseDurationMs("1.9ms"), 1);
}

TEST(ParseDurationMs, RejectsOtherUnitsNegativesAndWords) {
  for (const char* bad : {"soon", "", "5min", "-1", "-1s", "ms", "3 s", "nan", "inf", "1e400", " 5", "0x10", "86400001",
                          "99999999999999999999s", "1.s", ".5s"}) {
    auto d = parseDurationMs(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(d.status().message(), std::string("bad duration `") + bad + "` (e.g. 300ms or 0.5s, at most 24h)");
  }
  EXPECT_EQ(*parseDurationMs("86400s"), 86400000) << "a day is the most";
}

TEST(ParseBind, ContainerPathDefaultsToHostPathReadOnly) {
  auto b = parseBind("/srv/data");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->host_path(), "/srv/data");
  EXPECT_EQ(b->container_path(), "/srv/data");
  EXPECT_TRUE(b->read_only());
}

TEST(ParseBind, ContainerPathAndRw) {
  auto b = parseBind("/srv:/data");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->container_path(), "/data");
  EXPECT_TRUE(b->read_only());
  b = parseBind("/srv:/data:rw");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->container_path(), "/data");
  EXPECT_FALSE(b->read_only());
  b = parseBind("/srv::rw");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->container_path(), "/srv");
  EXPECT_FALSE(b->read_only());
  b = parseBind("/srv:/data:ro");  // anything but rw is read-only
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->read_only());
}

TEST(ParseBind, RejectsEmptyHostAndTooManyParts) {
  for (const char* bad : {"", ":/data", "a:b:rw:x"}) {
    auto b = parseBind(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(b.status().message(), std::string("--bind wants HOST[:CONTAINER][:rw], got `") + bad + "`");
  }
}

}  // namespace
}  // namespace lxmig::cli

namespace lxmig::cli {
namespace {

TEST(Args, SinceTakesMinutesHoursDaysWeeks) {
  EXPECT_EQ(*parseSinceMs("90m"), 90 * 60 * 1000);
  EXPECT_EQ(*parseSinceMs("24h"), 24 * 3600 * 1000);
  EXPECT_EQ(*parseSinceMs("7d"), int64_t{7} * 86400 * 1000);
  EXPECT_EQ(*parseSinceMs("2w"), int64_t{14} * 86400 * 1000);
  EXPECT_EQ(*parseSinceMs("3650d"), int64_t{3650} * 86400 * 1000);
  for (const char* bad : {"", "d", "7", "7x", "-1d", "1.5d", "7d ", " 7d", "3651d", "99999999999999999999w"})
    EXPECT_EQ(parseSinceMs(bad).status().code(), Code::kInvalidArgument) << bad;
}

}  // namespace
}  // namespace lxmig::cli
