#include "lxmig/proto/vocabulary.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace lxmig {
namespace {

// The audit stores these names: they are an interface and must not drift.
TEST(Vocabulary, NamesAreTheReleasedOnes) {
  EXPECT_EQ(name(v1::MODE_PRE_COPY), "pre-copy");
  EXPECT_EQ(name(v1::MODE_STOP_AND_COPY), "stop-and-copy");
  EXPECT_EQ(name(v1::MODE_INCOMING), "incoming");
  EXPECT_EQ(name(v1::MODE_AUTO), "auto");
  EXPECT_EQ(name(v1::TRACKER_UFFD_WP), "uffd-wp");
  EXPECT_EQ(name(v1::TRACKER_SOFT_DIRTY), "soft-dirty");
  EXPECT_EQ(name(v1::TRACKER_NONE), "none");
  EXPECT_EQ(name(v1::RESULT_COMMITTED), "committed");
  EXPECT_EQ(name(v1::RESULT_INTERRUPTED), "interrupted");
  EXPECT_EQ(name(v1::RESULT_RUNNING), "running");
  EXPECT_EQ(name(v1::PHASE_FINAL_SCAN), "final-scan");
  EXPECT_EQ(name(v1::PHASE_AWAIT_MEMORY), "await-memory");
  EXPECT_EQ(name(v1::PHASE_PRECOPY), "precopy");
  EXPECT_EQ(name(v1::PHASE_TARGET_PRELAYOUT_WAIT), "target-prelayout-wait");
  EXPECT_EQ(name(v1::PHASE_RESULT_OK), "ok");
  EXPECT_EQ(name(v1::PHASE_RESULT_FAILED), "failed");
}

TEST(Vocabulary, EveryValueParsesBackFromItsName) {
  std::set<std::string> seen;
  for (int i = 0; i < v1::Phase_descriptor()->value_count(); ++i) {
    auto v = static_cast<v1::Phase>(v1::Phase_descriptor()->value(i)->number());
    v1::Phase back = v1::PHASE_UNSPECIFIED;
    ASSERT_TRUE(parse(name(v), &back)) << name(v);
    EXPECT_EQ(back, v);
    EXPECT_TRUE(seen.insert(std::string(name(v))).second) << "two phases named " << name(v);
  }
  for (int i = 0; i < v1::MigrationResult_descriptor()->value_count(); ++i) {
    auto v = static_cast<v1::MigrationResult>(v1::MigrationResult_descriptor()->value(i)->number());
    v1::MigrationResult back = v1::RESULT_UNSPECIFIED;
    ASSERT_TRUE(parse(name(v), &back)) << name(v);
    EXPECT_EQ(back, v);
  }
}

TEST(Vocabulary, UnknownNamesAreRefusedAndLeaveTheOutputAlone) {
  v1::MigrationMode m = v1::MODE_PRE_COPY;
  EXPECT_FALSE(parse("precopy", &m));
  EXPECT_FALSE(parse("", &m));
  EXPECT_EQ(m, v1::MODE_PRE_COPY);
  v1::Tracker t = v1::TRACKER_AUTO;
  EXPECT_FALSE(parse("UFFD_WP", &t));
  EXPECT_EQ(t, v1::TRACKER_AUTO);
}

}  // namespace
}  // namespace lxmig
