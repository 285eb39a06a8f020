// The tree sender on real files: what arrives rebuilds every file whole,
// a later pass sends only the blocks that changed, and every chunk buffer
// goes back to the pool.
#include "lxmig/transport/tree_transfer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include <fcntl.h>
#include <sys/stat.h>

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

  // One pass of the tree into dst/ through a real TreeWriter, after
  // `previous`; adds the data bytes sent to *bytes.
  Manifest pass(const Manifest& previous, uint64_t* bytes,
                const std::function<void(const v1::TransferChunk&)>& peek = {}, bool writeback = false) {
    TreeWriter w(tmp_.path() + "/dst", false, nullptr, writeback);
    std::filesystem::create_directories(tmp_.path() + "/dst");
    auto sink = [&](v1::TransferChunk& c) {
      if (peek) peek(c);
      *bytes += c.data().size();
      Status st = w.apply(c);
      EXPECT_TRUE(st.ok()) << st.toString();
      return st.ok();
    };
    auto m = sendTree("t", v1::TransferChunk::ROOTFS, tmp_.path() + "/tree", previous, sink, {});
    EXPECT_TRUE(m.ok()) << m.status().toString();
    Status fin = w.finish();
    EXPECT_TRUE(fin.ok()) << fin.toString();
    return m.ok() ? *m : Manifest{};
  }
  std::string arrived(const std::string& rel) const {
    return readFile(tmp_.path() + "/dst/" + rel).value_or("<missing>");
  }
  // Overwrites n bytes at off in place, keeping the size.
  void overwrite(const std::string& rel, uint64_t off, const std::string& data) {
    std::fstream f(path(rel), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(off));
    f << data;
    ASSERT_TRUE(f.good());
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

TEST_F(TransferTest, AFileThatGrowsWhileSentArrivesWholeWithTheNextPass) {
  const std::string first = noise((3u << 19) + 11, 4), more = noise(5000, 5);
  write("log", first);
  bool grown = false;
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes, [&](const v1::TransferChunk& c) {
    if (grown || c.path() != "log" || c.data().empty()) return;
    std::ofstream f(path("log"), std::ios::binary | std::ios::app);  // the same file, not a new one
    f << more;
    grown = f.good();
  });
  ASSERT_TRUE(grown);
  // Cut where its header said; the pass remembered that size.
  EXPECT_TRUE(arrived("log") == first);
  bytes = 0;
  pass(m, &bytes);
  EXPECT_TRUE(arrived("log") == first + more);
  EXPECT_LE(bytes, kTreeBlockBytes + more.size()) << "the next pass sent more than the new end";
}

TEST_F(TransferTest, ALaterPassSendsOnlyTheBlocksThatChanged) {
  std::string data = noise(3u << 20, 6);
  write("db/heap", data);
  write("db/other", noise(100000, 7));
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes);
  EXPECT_EQ(bytes, data.size() + 100000);
  // A database writes three 8 KiB pages here and there, and appends one.
  const std::string page = noise(8192, 8);
  for (uint64_t off : {uint64_t{0}, uint64_t{1} << 20, (uint64_t{3} << 20) - 8192}) {
    overwrite("db/heap", off, page);
    data.replace(off, page.size(), page);
  }
  std::ofstream(path("db/heap"), std::ios::binary | std::ios::app) << page;
  data += page;
  bytes = 0;
  m = pass(m, &bytes);
  EXPECT_TRUE(arrived("db/heap") == data);
  EXPECT_LE(bytes, 4 * kTreeBlockBytes) << "whole blocks of the four pages, nothing else";
  EXPECT_GE(bytes, 4 * page.size());
  // Nothing changed: nothing but (maybe) a look at files changed last
  // moment travels.
  bytes = 0;
  pass(m, &bytes);
  EXPECT_EQ(bytes, 0u);
  EXPECT_EQ(m.at("db/heap").blocks.size(), (data.size() + kTreeBlockBytes - 1) / kTreeBlockBytes);
}

// A file larger than one mapped window (64 MiB): a change across the
// windows' border and one in the last, short block travel, nothing else.
TEST_F(TransferTest, ALaterPassOverALargeFileSendsOnlyTheBlocksThatChangedAcrossWindows) {
  constexpr uint64_t kSize = (uint64_t{70} << 20) + 1000;
  write("db/big", noise(100000, 30));
  ASSERT_EQ(::truncate(path("db/big").c_str(), static_cast<off_t>(kSize)), 0);  // the rest a hole
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes);
  EXPECT_EQ(bytes, kSize);
  const std::string page = noise(8192, 31);
  overwrite("db/big", (uint64_t{64} << 20) - 4096,
            page);  // the last block of the first window and the first of the next
  overwrite("db/big", kSize - 500, page.substr(0, 500));
  bytes = 0;
  m = pass(m, &bytes);
  EXPECT_EQ(bytes, 2 * kTreeBlockBytes + 1000) << "the two blocks at the border and the short last one";
  std::string want = noise(100000, 30) + std::string(kSize - 100000, '\0');
  want.replace((uint64_t{64} << 20) - 4096, page.size(), page);
  want.replace(kSize - 500, 500, page.substr(0, 500));
  EXPECT_TRUE(arrived("db/big") == want);
  EXPECT_EQ(m.at("db/big").blocks.size(), (kSize + kTreeBlockBytes - 1) / kTreeBlockBytes);
  bytes = 0;
  pass(m, &bytes);
  EXPECT_EQ(bytes, 0u);
}

// A file of several names (a package manager's hard links, a database's
// backup by `cp -l`) arrives as one file with all its names, its content
// sent once, and stays so while names are added, broken off and removed
// between passes; a name broken off is never written through the others.
TEST_F(TransferTest, AFileOfSeveralNamesArrivesAsOneFileWithEachPass) {
  std::string data = noise(100000, 20);
  write("a", data);
  std::filesystem::create_directories(path("sub"));
  ASSERT_EQ(::link(path("a").c_str(), path("b").c_str()), 0);
  ASSERT_EQ(::link(path("a").c_str(), path("sub/c").c_str()), 0);
  write("x", "alone");
  auto inode = [&](const std::string& rel) {
    struct stat st {};
    return ::lstat((tmp_.path() + "/dst/" + rel).c_str(), &st) == 0 ? st.st_ino : 0;
  };
  auto links = [&](const std::string& rel) {
    struct stat st {};
    return ::lstat((tmp_.path() + "/dst/" + rel).c_str(), &st) == 0 ? st.st_nlink : 0;
  };
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes);
  EXPECT_EQ(bytes, data.size() + 5) << "the content of a file of three names travels once";
  ASSERT_NE(inode("a"), 0u);
  EXPECT_EQ(inode("b"), inode("a"));
  EXPECT_EQ(inode("sub/c"), inode("a"));
  EXPECT_EQ(links("a"), 3u);
  EXPECT_TRUE(arrived("sub/c") == data);

  // Written through one name: the blocks travel once, every name shows them.
  const std::string page = noise(8192, 21);
  overwrite("b", 40000, page);
  data.replace(40000, page.size(), page);
  bytes = 0;
  m = pass(m, &bytes);
  EXPECT_LE(bytes, 2 * kTreeBlockBytes);
  EXPECT_TRUE(arrived("a") == data);
  EXPECT_EQ(inode("sub/c"), inode("a"));

  // `b` replaced by a file of its own (written aside, renamed over), a new name `d`.
  const std::string own = noise(3000, 22);
  write("b", own);
  ASSERT_EQ(::link(path("a").c_str(), path("d").c_str()), 0);
  m = pass(m, &bytes);
  EXPECT_TRUE(arrived("b") == own);
  EXPECT_NE(inode("b"), inode("a"));
  EXPECT_EQ(links("b"), 1u);
  EXPECT_TRUE(arrived("a") == data) << "the file was written through a name broken off it";
  EXPECT_EQ(inode("d"), inode("a"));
  EXPECT_EQ(inode("sub/c"), inode("a"));

  // The first name removed: the others keep the file, still one.
  ASSERT_EQ(::unlink(path("a").c_str()), 0);
  m = pass(m, &bytes);
  EXPECT_EQ(inode("a"), 0u);
  EXPECT_TRUE(arrived("d") == data);
  EXPECT_EQ(inode("sub/c"), inode("d"));
  EXPECT_EQ(links("d"), 2u);
  EXPECT_TRUE(arrived("b") == own);
  EXPECT_EQ(treeBytes(tmp_.path() + "/tree"), data.size() + own.size() + 5) << "a file of two names counted once";
}

// The target's writer of a writable area starts each finished file on its
// way to disk (sync_file_range); the tree, written in place pass after
// pass, is the same.
TEST_F(TransferTest, AWriterThatStartsTheWriteBackBuildsTheSameTree) {
  std::string data = noise(3u << 20, 9);
  write("db/heap", data);
  write("db/wal/one", noise(70000, 10));
  write("empty", "");
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes, {}, /*writeback=*/true);
  EXPECT_EQ(bytes, data.size() + 70000);
  overwrite("db/heap", 1u << 20, noise(8192, 11));
  data.replace(1u << 20, 8192, noise(8192, 11));
  m = pass(m, &bytes, {}, /*writeback=*/true);
  EXPECT_TRUE(arrived("db/heap") == data);
  EXPECT_EQ(arrived("db/wal/one"), noise(70000, 10));
  EXPECT_EQ(arrived("empty"), "");
}

TEST_F(TransferTest, AFileChangedWithinTheSameClockTickIsLookedAtAgain) {
  std::string data = noise(1u << 20, 9);
  write("wal", data);
  struct stat before {};
  ASSERT_EQ(::stat(path("wal").c_str(), &before), 0);
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes);
  // Written after the pass with the very time the pass saw (a coarse
  // clock): size and time alike, only the content tells.
  const std::string page = noise(4096, 10);
  overwrite("wal", 65536, page);
  data.replace(65536, page.size(), page);
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("wal").c_str(), times, 0), 0);
  bytes = 0;
  pass(m, &bytes);
  EXPECT_TRUE(arrived("wal") == data);
  EXPECT_EQ(bytes, kTreeBlockBytes);
}

TEST_F(TransferTest, AFileThatShrankIsCutOnTheOtherSide) {
  write("tmpfile", noise(200000, 11));
  uint64_t bytes = 0;
  Manifest m = pass({}, &bytes);
  const std::string shorter = noise(1000, 12);
  write("tmpfile", shorter);
  bytes = 0;
  pass(m, &bytes);
  EXPECT_TRUE(arrived("tmpfile") == shorter);
}

// The source's rewrite: a page file followed while it grows (only the names
// it is told), then the tree sent with what the tail sent as `resume`: each
// file arrives whole, once.
TEST_F(TransferTest, ATailFollowsOnlyTheNamesItIsToldAndTheTreeSendsTheRest) {
  const std::string part1 = noise(300000, 6), part2 = noise(123457, 7), other = noise(70000, 8);
  write("pages-1.img", part1);
  write("pages-2.img", other);  // complete, not followed: sent with the tree
  write("inventory.img", "inv");
  TreeWriter w(tmp_.path() + "/dst", false);
  std::filesystem::create_directories(tmp_.path() + "/dst");
  std::map<std::string, uint64_t> bytesOf;
  auto sink = [&](v1::TransferChunk& c) {
    bytesOf[c.path()] += c.data().size();
    Status st = w.apply(c);
    EXPECT_TRUE(st.ok()) << st.toString();
    return st.ok();
  };
  uint64_t counted = 0;
  auto onBytes = [&](uint64_t n) { counted += n; };
  auto follow = [](const std::string& name) { return name == "pages-1.img"; };
  TailSender tail("t", v1::TransferChunk::ROOTFS, tmp_.path() + "/tree", "pages-");
  auto n = tail.poll(sink, onBytes, follow);
  ASSERT_TRUE(n.ok()) << n.status().toString();
  EXPECT_EQ(*n, part1.size());
  EXPECT_FALSE(bytesOf.count("pages-2.img")) << "not followed";
  {
    std::ofstream f(path("pages-1.img"), std::ios::binary | std::ios::app);
    f << part2;
  }
  n = tail.poll(sink, onBytes, follow);
  ASSERT_TRUE(n.ok()) << n.status().toString();
  EXPECT_EQ(*n, part2.size());
  EXPECT_EQ(counted, part1.size() + part2.size());

  auto m = sendTree("t", v1::TransferChunk::ROOTFS, tmp_.path() + "/tree", {}, sink, {}, &tail.sent());
  ASSERT_TRUE(m.ok()) << m.status().toString();
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(bytesOf["pages-1.img"], part1.size() + part2.size()) << "sent once";
  EXPECT_EQ(bytesOf["pages-2.img"], other.size());
  EXPECT_TRUE(arrived("pages-1.img") == part1 + part2);
  EXPECT_TRUE(arrived("pages-2.img") == other);
  EXPECT_EQ(arrived("inventory.img"), "inv");
}

// What CRIU's lazy-pages daemon reads at start-up goes first: names that
// begin with one of `first`, in name order, then the rest in name order.
TEST_F(TransferTest, NamesBeginningWithAFirstPrefixGoBeforeTheRest) {
  for (const char* f :
       {"cgroup.img", "core-7.img", "ids-10.img", "ids-7.img", "inventory.img", "mm-7.img", "pstree.img"})
    write(f, f);
  std::vector<std::string> order;
  auto sink = [&](v1::TransferChunk& c) {
    if (c.has_meta() && c.path() != ".") order.push_back(c.path());
    return true;
  };
  auto m = sendTree("t", v1::TransferChunk::IMAGES, tmp_.path() + "/tree", {}, sink, {}, nullptr,
                    {"ids-", "inventory.img", "pstree.img"});
  ASSERT_TRUE(m.ok()) << m.status().toString();
  EXPECT_EQ(order, (std::vector<std::string>{"ids-10.img", "ids-7.img", "inventory.img", "pstree.img", "cgroup.img",
                                             "core-7.img", "mm-7.img"}));
}

}  // namespace
}  // namespace lxmig::transport
