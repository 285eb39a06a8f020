// The checkpoint file's framing: what is written reads back; a flipped
// byte, a cut, a record over the bound, or no magic is refused with one
// line naming where.
#include "checkpoint_file.h"

#include <gtest/gtest.h>

#include <cstring>

namespace lxmig::cli {
namespace {

std::string sample() {
  std::string out;
  auto w = CheckpointWriter::start([&](const char* d, size_t n) {
    out.append(d, n);
    return okStatus();
  });
  EXPECT_TRUE(w.ok());
  v1::CheckpointRecord r;
  r.mutable_prepare()->set_migration_id("0123456789abcdef");
  r.mutable_prepare()->mutable_spec()->set_name("web");
  EXPECT_TRUE(w->add(r).ok());
  v1::CheckpointRecord c;
  c.mutable_chunk()->set_path("pages-1.img");
  c.mutable_chunk()->set_data(std::string(100000, 'p'));
  EXPECT_TRUE(w->add(c).ok());
  v1::CheckpointRecord e;
  e.set_stream_end(true);
  EXPECT_TRUE(w->add(e).ok());
  EXPECT_TRUE(w->end("n1", 42).ok());
  EXPECT_EQ(w->bytes(), out.size());
  return out;
}

// Every record of `bytes`, or the first error.
Result<std::vector<v1::CheckpointRecord>> readAll(const std::string& bytes) {
  size_t at = 0;
  LXMIG_ASSIGN_OR_RETURN(auto r, CheckpointReader::start([&](char* d, size_t n) -> Result<size_t> {
                           size_t k = std::min(n, bytes.size() - at);
                           std::memcpy(d, bytes.data() + at, k);
                           at += k;
                           return k;
                         }));
  std::vector<v1::CheckpointRecord> out;
  v1::CheckpointRecord rec;
  while (true) {
    LXMIG_ASSIGN_OR_RETURN(bool more, r.next(&rec));
    if (!more) break;
    out.push_back(rec);
  }
  return out;
}

TEST(CheckpointFile, WhatIsWrittenReadsBack) {
  auto recs = readAll(sample());
  ASSERT_TRUE(recs.ok()) << recs.status().message();
  ASSERT_EQ(recs->size(), 4u);
  EXPECT_EQ((*recs)[0].prepare().spec().name(), "web");
  EXPECT_EQ((*recs)[1].chunk().data().size(), 100000u);
  EXPECT_EQ((*recs)[2].record_case(), v1::CheckpointRecord::kStreamEnd);
  EXPECT_EQ((*recs)[3].end().records(), 3u);
  EXPECT_EQ((*recs)[3].end().node(), "n1");
}

TEST(CheckpointFile, DamageIsRefusedWithOneLine) {
  const std::string good = sample();
  std::string flipped = good;
  flipped[good.size() / 2] ^= 1;
  std::string longRecord = good.substr(0, 8) + std::string("\xff\xff\xff\x7f", 4);
  const std::pair<std::string, const char*> cases[] = {
      {flipped, "does not match its end record"},
      {good.substr(0, good.size() - 1), "cut short"},
      {good.substr(0, 8 + 4 + 10), "cut short"},
      {good.substr(0, 8), "no end record"},
      {longRecord, "a record of 2147483647 bytes at byte 8"},
      {"LXMIGCK0" + good.substr(8), "not an lxmig checkpoint"},
      {"", "not an lxmig checkpoint"},
  };
  for (const auto& [bytes, why] : cases) {
    auto r = readAll(bytes);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

TEST(CheckpointFile, TheEndRecordIsTheWritersOwn) {
  auto w = CheckpointWriter::start([](const char*, size_t) { return okStatus(); });
  ASSERT_TRUE(w.ok());
  v1::CheckpointRecord e;
  e.mutable_end()->set_records(0);
  EXPECT_FALSE(w->add(e).ok());
}

}  // namespace
}  // namespace lxmig::cli
