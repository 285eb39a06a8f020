// The tree sender on real files: what arrives rebuilds every file whole,
// reading goes on to EOF, and every chunk buffer goes back to the pool.
#include "lxmig/transport/tree_transfer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "lxmig/base/files.h"
#include "lxmig/transport/data_link.h"
#include "unit/temp_dir.h"

namespace lxmig::transport {
namespace {

std::string noise(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  void write(const std::string& rel, const std::string& data) {
    std::filesystem::create_directories(std::filesystem::path(path(rel)).parent_path());
    ASSERT_TRUE(writeFileAtomic(path(rel), data, 0600).ok());
  }
  std::string path(const std::string& rel) const { return tmp_.path() + "/tree/" + rel; }

  // Sends the tree the way the data link consumes it: each chunk's data is
  // taken and its buffer recycled once "sent". Returns what arrived per path.
  std::map<std::string, std::string> send(const std::function<void(const v1::TransferChunk&)>& peek = {}) {
    std::map<std::string, std::string> got;
    auto sink = [&](v1::TransferChunk& c) {
      if (peek) peek(c);
      if (c.has_meta()) got.try_emplace(c.path());
      if (!c.data().empty()) {
        std::string& f = got[c.path()];
        EXPECT_EQ(c.offset(), f.size()) << c.path() << ": chunks out of order";
        f += c.data();
      }
      recycleBuffer(std::move(*c.mutable_data()));
      return true;
    };
    auto m = sendTree("t", v1::TransferChunk::ROOTFS, tmp_.path() + "/tree", {}, sink, {});
    EXPECT_TRUE(m.ok()) << m.status().toString();
    return got;
  }

  testing::TempDir tmp_{"lxmig-transfer"};
};

TEST_F(TransferTest, EveryFileArrivesWholeAndEveryBufferComesBack) {
  const std::map<std::string, std::string> files = {
      {"small", noise(300, 1)},
      {"empty", ""},
      {"big", noise((5u << 19) + 7, 2)},  // 2.5 MiB and a bit: three chunks
      {"dir/exact", noise(1u << 20, 3)},
  };
  for (const auto& [rel, data] : files) write(rel, data);

  // Four 1 MiB buffers in the pool; after the whole tree they must all be
  // there again (each file's read that found EOF used to drop one).
  std::set<const char*> mine;
  {
    std::vector<std::string> bufs;
    for (int i = 0; i < 4; ++i) bufs.push_back(takeBuffer(1 << 20));
    for (auto& b : bufs) {
      mine.insert(b.data());
      recycleBuffer(std::move(b));
    }
  }
  auto got = send();
  for (const auto& [rel, data] : files) {
    ASSERT_TRUE(got.count(rel)) << rel << " never sent";
    EXPECT_EQ(got[rel].size(), data.size()) << rel;
    EXPECT_TRUE(got[rel] == data) << rel << ": content differs";
  }
  std::vector<std::string> again;
  for (int i = 0; i < 4; ++i) {
    again.push_back(takeBuffer(1 << 20));
    EXPECT_TRUE(mine.count(again.back().data())) << "buffer " << i << " of the pool was lost while sending";
  }
  for (auto& b : again) recycleBuffer(std::move(b));
}

TEST_F(TransferTest, AFileThatGrowsWhileSentIsSentToItsNewEnd) {
  const std::string first = noise((3u << 19) + 11, 4), more = noise(5000, 5);
  write("log", first);
  bool grown = false;
  auto got = send([&](const v1::TransferChunk& c) {
    if (grown || c.path() != "log" || c.data().empty()) return;
    std::ofstream f(path("log"), std::ios::binary | std::ios::app);  // the same file, not a new one
    f << more;
    grown = f.good();
  });
  ASSERT_TRUE(grown);
  EXPECT_EQ(got["log"].size(), first.size() + more.size());
  EXPECT_TRUE(got["log"] == first + more);
}

}  // namespace
}  // namespace lxmig::transport
