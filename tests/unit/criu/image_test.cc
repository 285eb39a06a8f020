#include "lxmig/criu/image.h"

#include <gtest/gtest.h>

#include <cstring>

#include "lxmig/criu/files.pb.h"

namespace lxmig::criu {

using tracking::kPageSize;
using tracking::PageSet;
using tracking::Range;
namespace {

constexpr uint64_t P = kPageSize;

TEST(CriuImage, RoundTrip) {
  Pagemap pm;
  pm.pagesId = 7;
  pm.entries = {{0x400000, 3, kPePresent | kPeLazy}, {0x800000, 2, kPeParent}};
  auto back = parsePagemap(serializePagemap(pm));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->pagesId, 7u);
  EXPECT_EQ(back->entries, pm.entries);
}

TEST(CriuImage, RejectsGarbage) {
  EXPECT_FALSE(parsePagemap("short").ok());
  std::string bad = serializePagemap(Pagemap{1, {{0x1000, 1, kPePresent}}});
  bad[0] ^= 1;
  EXPECT_FALSE(parsePagemap(bad).ok());
  std::string cut = serializePagemap(Pagemap{1, {{0x1000, 1, kPePresent}}});
  cut.resize(cut.size() - 2);
  EXPECT_FALSE(parsePagemap(cut).ok());
  // Unsorted entries would make CRIU read the wrong pages.
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{0x5000, 1, kPePresent}, {0x1000, 1, kPePresent}}})).ok());
  // An entry whose end wraps around 2^64 (found by the fuzzer: the next
  // entry's order check then compared against the wrapped end).
  EXPECT_FALSE(
      parsePagemap(serializePagemap(Pagemap{1, {{0x1000, uint64_t{1} << 52, kPePresent}, {0x2000, 1, kPePresent}}}))
          .ok());
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{kAddressSpaceEnd, 1, kPePresent}}})).ok());
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{1, {{0x1000, 0, kPePresent}}})).ok()) << "an empty entry";
}

TEST(CriuImage, RoundPagemapSplitsPresentAndParent) {
  PageSet valid, sent;
  valid.add(0, 10 * P);
  valid.add(20 * P, 22 * P);
  sent.add(2 * P, 4 * P);
  sent.add(20 * P, 22 * P);
  Pagemap pm = roundPagemap(5, valid, sent);
  std::vector<PagemapEntry> want = {
      {0, 2, kPeParent}, {2 * P, 2, kPePresent}, {4 * P, 6, kPeParent}, {20 * P, 2, kPePresent}};
  EXPECT_EQ(pm.entries, want);
}

TEST(CriuImage, RewriteKeepsOnlyPagesTheTargetLacks) {
  Pagemap in;
  in.pagesId = 3;
  // 4 lazy pages at 0, 2 pages at 16P (not lazy), 1 page already in parent.
  in.entries = {{0, 4, kPePresent | kPeLazy}, {16 * P, 2, kPePresent}, {30 * P, 1, kPeParent}};
  PageSet onTarget;
  onTarget.add(1 * P, 3 * P);    // pages 1,2 of the first entry
  onTarget.add(16 * P, 18 * P);  // the whole second entry
  PagemapRewrite rw = rewritePagemap(in, onTarget);
  std::vector<PagemapEntry> want = {{0, 1, kPePresent | kPeLazy},
                                    {1 * P, 2, kPeParent | kPeLazy},
                                    {3 * P, 1, kPePresent | kPeLazy},
                                    {16 * P, 2, kPeParent},
                                    {30 * P, 1, kPeParent}};
  EXPECT_EQ(rw.pagemap.entries, want);
  // Data of pages 0 and 3 of the old file travel: offsets 0 and 3P.
  std::vector<std::pair<uint64_t, uint64_t>> copy = {{0, P}, {3 * P, P}};
  EXPECT_EQ(rw.copy, copy);
  EXPECT_EQ(rw.parentPages, 4u);
  EXPECT_EQ(rw.presentPages, 2u);
}

// Images as CRIU writes them: the two magics, then length-prefixed
// messages (and, in fifo-data.img, each FIFO's bytes after its message).
std::string image(uint32_t magic) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &kImgCommonMagic, 4);
  std::memcpy(out.data() + 4, &magic, 4);
  return out;
}
void append(std::string& img, const google::protobuf::MessageLite& m, const std::string& trailing = "") {
  std::string body = m.SerializeAsString();
  uint32_t len = static_cast<uint32_t>(body.size());
  img.append(reinterpret_cast<const char*>(&len), 4);
  img += body + trailing;
}
std::string filesImage() {
  std::string img = image(kFilesMagic);
  auto reg = [&](uint32_t id, const std::string& path) {
    pb::FileEntry e;
    e.set_type(1);
    e.set_id(id);
    e.mutable_reg()->set_id(id);
    e.mutable_reg()->set_name(path);
    append(img, e);
  };
  auto fifo = [&](uint32_t id, uint32_t pipe, uint32_t reg) {
    pb::FileEntry e;
    e.set_type(3);
    e.set_id(id);
    e.mutable_fifo()->set_id(id);
    e.mutable_fifo()->set_pipe_id(pipe);
    e.mutable_fifo()->set_regf_id(reg);
    append(img, e);
  };
  reg(1, "/shared/fifo");
  fifo(2, 500, 1);
  reg(3, "/tmp/own");
  fifo(4, 600, 3);
  reg(5, "/usr/lib/libc.so.6");  // a plain file: no FIFO
  return img;
}
std::string fifoData(const std::vector<std::pair<uint32_t, std::string>>& fifos) {
  std::string img = image(kFifoDataMagic);
  for (const auto& [pipe, bytes] : fifos) {
    pb::PipeData d;
    d.set_pipe_id(pipe);
    d.set_bytes(static_cast<uint32_t>(bytes.size()));
    d.set_size(65536);
    append(img, d, bytes);
  }
  return img;
}

TEST(CriuFifos, PathsByPipe) {
  auto paths = fifoPaths(filesImage());
  ASSERT_TRUE(paths.ok()) << paths.status().toString();
  EXPECT_EQ(*paths, (std::map<uint32_t, std::string>{{500, "/shared/fifo"}, {600, "/tmp/own"}}));
}

TEST(CriuFifos, DropsTheBytesOfTheNamedFifosOnly) {
  const std::string in = fifoData({{500, "1\n2\n3\n"}, {600, "kept bytes"}});
  size_t dropped = 0;
  auto out = dropFifoData(in, {500}, &dropped);
  ASSERT_TRUE(out.ok()) << out.status().toString();
  EXPECT_EQ(dropped, 1u);
  EXPECT_EQ(*out, fifoData({{600, "kept bytes"}}));
  auto same = dropFifoData(in, {}, &dropped);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, in);
  EXPECT_EQ(dropped, 0u);
}

TEST(CriuFifos, RejectsGarbage) {
  EXPECT_FALSE(fifoPaths("short").ok());
  EXPECT_FALSE(fifoPaths(fifoData({})).ok()) << "wrong magic";
  std::string past = fifoData({{500, "abc"}});
  past.resize(past.size() - 1);  // the bytes run past the end
  EXPECT_FALSE(dropFifoData(past, {}, nullptr).ok());
  std::string noFile = image(kFilesMagic);
  pb::FileEntry e;
  e.set_type(3);
  e.mutable_fifo()->set_pipe_id(9);
  e.mutable_fifo()->set_regf_id(77);  // names no file
  append(noFile, e);
  EXPECT_FALSE(fifoPaths(noFile).ok());
}

}  // namespace
}  // namespace lxmig::criu
