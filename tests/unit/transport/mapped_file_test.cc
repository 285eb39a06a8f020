// Reading a file through a mapping: a file cut shorter under it is a
// failed read, never a dead process; a fault elsewhere still kills.
#include "mapped_file.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "unit/temp_dir.h"

namespace lxmig::transport {
namespace {

class MappedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(tmp_.ok());
    fd_ = UniqueFd(::open((tmp_.path() + "/f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd_);
    data_.resize(kBytes);
    for (size_t i = 0; i < data_.size(); ++i) data_[i] = static_cast<char>(i * 7 + i / 4096);
    ASSERT_EQ(::pwrite(fd_.get(), data_.data(), data_.size(), 0), static_cast<ssize_t>(data_.size()));
  }
  static constexpr size_t kBytes = 1 << 20;
  static constexpr size_t kBlock = 32 << 10;
  testing::TempDir tmp_{"lxmig-mapped"};
  UniqueFd fd_;
  std::string data_;
};

TEST_F(MappedFileTest, HashesAndCopiesWhatTheFileHolds) {
  MappedWindow w(fd_.get(), 0, kBytes - 100);  // the last block is short
  ASSERT_TRUE(w.ok());
  std::vector<uint64_t> h(kBytes / kBlock, 0);
  ASSERT_TRUE(w.hashBlocks(kBlock, h.data()));
  for (size_t i = 0; i < h.size(); ++i) {
    const size_t len = std::min(kBlock, kBytes - 100 - i * kBlock);
    EXPECT_EQ(h[i], XXH3_64bits(data_.data() + i * kBlock, len)) << "block " << i;
  }
  std::string out(5000, '\0');
  ASSERT_TRUE(w.copy(70000, out.size(), out.data()));
  EXPECT_EQ(out, data_.substr(70000, out.size()));
  EXPECT_FALSE(w.copy(kBytes - 100 - 10, 11, out.data())) << "past the window";
}

TEST_F(MappedFileTest, AFileCutShorterUnderTheMappingIsAFailedReadNotAFault) {
  MappedWindow w(fd_.get(), 0, kBytes);
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(::ftruncate(fd_.get(), 4096), 0);
  std::vector<uint64_t> h(kBytes / kBlock, 0);
  EXPECT_FALSE(w.hashBlocks(kBlock, h.data()));
  std::string out(8192, '\0');
  EXPECT_FALSE(w.copy(kBytes - out.size(), out.size(), out.data()));
  // What is still there reads, and so does the next window after a fault.
  EXPECT_TRUE(w.copy(0, 4096, out.data()));
  EXPECT_EQ(out.substr(0, 4096), data_.substr(0, 4096));
  MappedWindow again(fd_.get(), 0, 4096);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.hashBlocks(kBlock, h.data()));
  EXPECT_EQ(h[0], XXH3_64bits(data_.data(), 4096));
}

TEST_F(MappedFileTest, AFaultOutsideAGuardedReadStillKills) {
  MappedWindow w(fd_.get(), 0, kBytes);  // installs the handler
  ASSERT_TRUE(w.ok());
  EXPECT_DEATH(
      {
        void* p = ::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd_.get(), 0);
        if (p == MAP_FAILED) _exit(0);
        if (::ftruncate(fd_.get(), 0) != 0) _exit(0);
        volatile char c = static_cast<const char*>(p)[kBytes - 1];
        (void)c;
        _exit(0);
      },
      "");
}

TEST_F(MappedFileTest, NothingToMapIsNotAWindow) {
  MappedWindow w(fd_.get(), 0, 0);
  EXPECT_FALSE(w.ok());
  uint64_t h = 0;
  EXPECT_FALSE(w.hashBlocks(kBlock, &h));
}

}  // namespace
}  // namespace lxmig::transport
