// The target's page store on real files in a temporary directory: rounds are
// folded in, and the final images come out complete and self-contained.
#include "page_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>

#include "criu_image.h"
#include "lxmig/base/files.h"
#include "unit/temp_dir.h"

namespace lxmig::agent {
namespace {

constexpr uint64_t P = kPageSize;

std::string page(char c) { return std::string(P, c); }

// "aBCd" for a file of four pages filled with those bytes ('?' when mixed).
std::string fills(const std::string& data) {
  std::string out;
  for (size_t i = 0; i < data.size(); i += P) {
    std::string pg = data.substr(i, P);
    out += pg.find_first_not_of(pg[0]) == std::string::npos ? pg[0] : '?';
  }
  return out;
}

class PageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(tmp_.ok()); }
  void write(const std::string& rel, const std::string& data) {
    std::filesystem::create_directories(std::filesystem::path(dir() + "/" + rel).parent_path());
    ASSERT_TRUE(writeFileAtomic(dir() + "/" + rel, data, 0600).ok());
  }
  // A round: pages at the given page numbers with the given fill bytes.
  void round(int k, uint32_t vpid, std::vector<std::pair<uint64_t, char>> pages) {
    std::sort(pages.begin(), pages.end());  // a round's pages file is in address order
    PageSet sent;
    std::string data;
    for (auto [n, c] : pages) {
      sent.add(n * P, (n + 1) * P);
      data += page(c);
    }
    char d[32];
    std::snprintf(d, sizeof d, "rounds/%04d/", k);
    write(std::string(d) + "pages-" + std::to_string(vpid) + ".img", data);
    write(std::string(d) + "pagemap-" + std::to_string(vpid) + ".img", serializePagemap(roundPagemap(vpid, sent, sent)));
  }
  const std::string& dir() const { return tmp_.path(); }
  testing::TempDir tmp_{"lxmig-pagestore"};
};

TEST_F(PageStoreTest, FastPathWritesDeltaIntoTheFlatStore) {
  PageStore st(dir());
  round(0, 2, {{10, 'a'}, {11, 'b'}, {12, 'c'}, {20, 'd'}});
  ASSERT_TRUE(st.applyRounds().ok());
  round(1, 2, {{11, 'B'}});
  ASSERT_TRUE(st.applyRounds().ok());
  EXPECT_FALSE(pathExists(dir() + "/rounds/0001")) << "applied rounds are removed";
  // Final: 10, 11 held by the target; 12 dirty (sent now); 20 held.
  Pagemap pm;
  pm.pagesId = 7;
  pm.entries = {{10 * P, 2, kPeParent | kPeLazy}, {12 * P, 1, kPePresent | kPeLazy}, {20 * P, 1, kPeParent | kPeLazy}};
  write("pagemap-2.img", serializePagemap(pm));
  write("pages-7.img", page('C'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->copiedBytes, 0u);
  EXPECT_EQ(as->rebuilt, 0u);
  EXPECT_EQ(as->fromStore, 3u);
  EXPECT_EQ(fills(*readFile(dir() + "/pages-7.img")), "aBCd");
  auto out = parsePagemap(*readFile(dir() + "/pagemap-2.img"));
  ASSERT_TRUE(out.ok());
  for (const auto& e : out->entries) EXPECT_EQ(e.flags, kPePresent | kPeLazy) << "no PARENT left";
  EXPECT_FALSE(pathExists(dir() + "/store"));
  EXPECT_FALSE(pathExists(dir() + "/rounds"));
}

TEST_F(PageStoreTest, ChangedPageSetIsRebuiltFromThePieces) {
  PageStore st(dir());
  round(0, 5, {{1, 'a'}, {2, 'b'}});
  ASSERT_TRUE(st.applyRounds().ok());
  round(1, 5, {{9, 'x'}});  // memory that appeared later: outside the layout
  round(2, 5, {{9, 'y'}, {2, 'B'}});
  ASSERT_TRUE(st.applyRounds().ok());
  // Page 1 is gone from the dump, page 3 is new (sent now), 2 and 9 held.
  Pagemap pm;
  pm.pagesId = 1;
  pm.entries = {{2 * P, 1, kPeParent}, {3 * P, 1, kPePresent}, {9 * P, 1, kPeParent}};
  write("pagemap-5.img", serializePagemap(pm));
  write("pages-1.img", page('n'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->rebuilt, 1u);
  EXPECT_EQ(fills(*readFile(dir() + "/pages-1.img")), "Bny");
}

TEST_F(PageStoreTest, ParentPageTheStoreLacksIsAnError) {
  PageStore st(dir());
  round(0, 3, {{1, 'a'}});
  ASSERT_TRUE(st.applyRounds().ok());
  Pagemap pm;
  pm.pagesId = 1;
  pm.entries = {{1 * P, 2, kPeParent}};
  write("pagemap-3.img", serializePagemap(pm));
  write("pages-1.img", "");
  auto as = st.assemble();
  ASSERT_FALSE(as.ok());
  EXPECT_NE(as.status().message().find("not in the store"), std::string::npos) << as.status().message();
}

TEST_F(PageStoreTest, UntouchedImagesStayAsTheyAre) {
  PageStore st(dir());
  Pagemap pm;
  pm.pagesId = 4;
  pm.entries = {{1 * P, 1, kPePresent}};
  write("pagemap-9.img", serializePagemap(pm));
  write("pages-4.img", page('z'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok());
  EXPECT_EQ(fills(*readFile(dir() + "/pages-4.img")), "z");
}

}  // namespace
}  // namespace lxmig::agent
