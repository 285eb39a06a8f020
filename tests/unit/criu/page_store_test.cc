// The target's page store on real files in a temporary directory: rounds are
// folded in, and the final images come out complete and self-contained.
#include "lxmig/criu/page_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "lxmig/base/files.h"
#include "lxmig/criu/image.h"
#include "unit/temp_dir.h"

namespace lxmig::criu {

using tracking::kPageSize;
using tracking::PageSet;
using tracking::Range;
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
    write(std::string(d) + "pagemap-" + std::to_string(vpid) + ".img",
          serializePagemap(roundPagemap(vpid, sent, sent)));
  }
  // CRIU's dump after the rewrite: pagemap-<vpid>.img naming pages-<id>.img,
  // which holds the delta.
  void dump(uint32_t vpid, uint32_t pagesId, std::vector<PagemapEntry> entries, const std::string& delta) {
    Pagemap pm;
    pm.pagesId = pagesId;
    pm.entries = std::move(entries);
    write("pagemap-" + std::to_string(vpid) + ".img", serializePagemap(pm));
    write("pages-" + std::to_string(pagesId) + ".img", delta);
  }
  const std::string& dir() const { return tmp_.path(); }
  // The pages of pagemap-<vpid>.img in address order, read as CRIU reads
  // them: an entry's pages at its offset, or after the previous present
  // entry's.
  std::string criuView(uint32_t vpid) const {
    auto pm = parsePagemap(readFile(dir() + "/pagemap-" + std::to_string(vpid) + ".img").value_or(""));
    EXPECT_TRUE(pm.ok());
    if (!pm.ok()) return "";
    const std::string file = readFile(dir() + "/pages-" + std::to_string(pm->pagesId) + ".img").value_or("");
    std::string out;
    uint64_t at = 0;
    for (const auto& e : pm->entries) {
      if (!(e.flags & kPePresent)) continue;
      if (e.offset) at = *e.offset;
      EXPECT_LE(at + e.pages * P, file.size()) << "entry at " << e.vaddr;
      out += file.substr(at, e.pages * P);
      at += e.pages * P;
    }
    return out;
  }
  // Random rounds, dumps and predictions; every assembled page checked
  // (PagesThatAppearOrVanishAnywhere...).
  void appearOrVanishTrials(bool offsets);
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
  dump(2, 7, {{10 * P, 2, kPeParent | kPeLazy}, {12 * P, 1, kPePresent | kPeLazy}, {20 * P, 1, kPeParent | kPeLazy}},
       page('C'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->copiedBytes, 0u);
  EXPECT_EQ(as->rebuilt, 0u);
  EXPECT_EQ(as->fromStore, 3u);
  EXPECT_EQ(fills(*readFile(dir() + "/pages-7.img")), "aBCd");
  auto out = parsePagemap(*readFile(dir() + "/pagemap-2.img"));
  ASSERT_TRUE(out.ok());
  // No PARENT left, and pages 10-12, all PRESENT now, are one entry.
  std::vector<PagemapEntry> want = {{10 * P, 3, kPePresent | kPeLazy}, {20 * P, 1, kPePresent | kPeLazy}};
  EXPECT_EQ(out->entries, want);
  EXPECT_EQ(as->joinedEntries, 1u);
  EXPECT_FALSE(pathExists(dir() + "/store"));
  EXPECT_FALSE(pathExists(dir() + "/rounds"));
}

// A delta of more than a MiB, scattered single pages and a run among
// pages the store holds: every page lands where it belongs.
TEST_F(PageStoreTest, ADeltaOfScatteredPagesAndRunsLandsWhole) {
  PageStore st(dir());
  std::vector<std::pair<uint64_t, char>> all;
  for (uint64_t n = 0; n < 1200; ++n) all.push_back({n, static_cast<char>('a' + n % 26)});
  round(0, 2, all);
  ASSERT_TRUE(st.applyRounds().ok());
  // Every third page sent again, and pages 760-800 as one run.
  std::vector<PagemapEntry> entries;
  std::string delta, want;
  for (uint64_t n = 0; n < 1200; ++n) {
    const bool again = n % 3 == 0 || (n >= 760 && n <= 800);
    const char c = again ? static_cast<char>('A' + n % 26) : static_cast<char>('a' + n % 26);
    want += page(c);
    if (again) delta += page(c);
    const uint32_t flags = (again ? kPePresent : kPeParent) | kPeLazy;
    if (!entries.empty() && entries.back().flags == flags && entries.back().vaddr + entries.back().pages * P == n * P)
      ++entries.back().pages;
    else entries.push_back({n * P, 1, flags});
  }
  ASSERT_GT(delta.size(), 1u << 20);
  dump(2, 7, entries, delta);
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  auto got = readFile(dir() + "/pages-7.img");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), want.size());
  EXPECT_EQ(fills(*got), fills(want));
  // One entry for the whole range: the lazy fill takes it in one piece.
  auto out = parsePagemap(*readFile(dir() + "/pagemap-2.img"));
  ASSERT_TRUE(out.ok());
  std::vector<PagemapEntry> whole = {{0, 1200, kPePresent | kPeLazy}};
  EXPECT_EQ(out->entries, whole);
  EXPECT_EQ(as->joinedEntries, entries.size() - 1);
}

TEST_F(PageStoreTest, SharedMemoryIsKeptApartFromTheProcessOfTheSameNumber) {
  PageStore st(dir());
  // Process 7 and shared memory object 7 (offsets, not addresses), in the
  // same round directory under different page files.
  round(0, 7, {{0, 'p'}, {1, 'q'}});
  write("rounds/0000/pages-2147483648.img", page('a') + page('b') + page('c'));
  PageSet sent;
  sent.add(0, 3 * P);
  write("rounds/0000/pagemap-shmem-7.img", serializePagemap(roundPagemap(2147483648u, sent, sent)));
  ASSERT_TRUE(st.applyRounds().ok());
  write("rounds/0001/pages-2147483648.img", page('B'));
  PageSet changed;
  changed.add(P, 2 * P);
  write("rounds/0001/pagemap-shmem-7.img", serializePagemap(roundPagemap(2147483648u, sent, changed)));
  ASSERT_TRUE(st.applyRounds().ok());
  // The dump: the process unchanged; of the object, offset 2 changed
  // again (sent now), 0 and 1 held.
  dump(7, 1, {{0, 2, kPeParent}}, "");
  Pagemap shm;
  shm.pagesId = 2;
  shm.entries = {{0, 2, kPeParent}, {2 * P, 1, kPePresent}};
  write("pagemap-shmem-7.img", serializePagemap(shm));
  write("pages-2.img", page('C'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(fills(*readFile(dir() + "/pages-1.img")), "pq");
  EXPECT_EQ(fills(*readFile(dir() + "/pages-2.img")), "aBC");
  auto out = parsePagemap(*readFile(dir() + "/pagemap-shmem-7.img"));
  ASSERT_TRUE(out.ok());
  for (const auto& e : out->entries) EXPECT_EQ(e.flags, kPePresent) << "no PARENT left";
}

// Two rounds and the dump of shared memory object 7 whose round pagemaps
// name its memfd (when `name`): offsets 0-3 sent, 1 changed, then at the
// dump 2 changed again (the delta), 3 gone (a hole now), 4 new.
class MirrorTest : public PageStoreTest {
 protected:
  void rounds(PageStore& st, const std::optional<std::string>& name) {
    write("rounds/0000/pages-2147483648.img", page('a') + page('b') + page('c') + page('d'));
    PageSet sent;
    sent.add(0, 4 * P);
    Pagemap pm = roundPagemap(2147483648u, sent, sent);
    pm.memfdName = name;
    write("rounds/0000/pagemap-shmem-7.img", serializePagemap(pm));
    ASSERT_TRUE(st.applyRounds().ok());
    write("rounds/0001/pages-2147483648.img", page('B'));
    PageSet changed;
    changed.add(P, 2 * P);
    pm = roundPagemap(2147483648u, sent, changed);
    pm.memfdName = name;
    write("rounds/0001/pagemap-shmem-7.img", serializePagemap(pm));
    ASSERT_TRUE(st.applyRounds().ok());
    Pagemap shm;
    shm.pagesId = 2;
    shm.entries = {{0, 2, kPeParent}, {2 * P, 1, kPePresent}, {4 * P, 1, kPePresent}};
    write("pagemap-shmem-7.img", serializePagemap(shm));
    write("pages-2.img", page('C') + page('e'));
  }
  // The first `pages` pages of a memfd, as fills() shows them ('\0' a hole).
  static std::string content(int fd, uint64_t pages) {
    std::string data(pages * P, 'x');
    EXPECT_EQ(::pread(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    return fills(data);
  }
  static std::string link(int fd) {
    char b[512];
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), b, sizeof b);
    return n > 0 ? std::string(b, static_cast<size_t>(n)) : "";
  }
};

TEST_F(MirrorTest, SharedMemoryIsKeptWholeInAMemfdOfItsName) {
  PageStore st(dir());
  rounds(st, "/dev/zero");
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  auto m = st.mirrors();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].first, 7u);
  EXPECT_EQ(link(m[0].second), "/memfd:/dev/zero (deleted)") << "CRIU's restore checks the name";
  EXPECT_EQ(content(m[0].second, 5), std::string("aBC") + '\0' + "e") << "the delta in, the vanished page a hole";
  EXPECT_EQ(::lseek(m[0].second, 3 * P, SEEK_HOLE), static_cast<off_t>(3 * P)) << "a hole, not zeros written";
  EXPECT_EQ(::fcntl(m[0].second, F_GET_SEALS), 0) << "sealable, with no seal yet (CRIU adds them)";
  // The store kept no other copy: the images stay as sent, so a restore
  // that would not take the memfd fails on the missing parent instead of
  // restoring anything else.
  EXPECT_EQ(fills(*readFile(dir() + "/pages-2.img")), "Ce");
  auto pm = parsePagemap(*readFile(dir() + "/pagemap-shmem-7.img"));
  ASSERT_TRUE(pm.ok());
  EXPECT_EQ(pm->entries.front().flags, kPeParent);
  EXPECT_FALSE(pathExists(dir() + "/store/flat-shmem-7.img"));
  EXPECT_EQ(as->fromStore, 2u);
}

TEST_F(MirrorTest, NewPagesAreWrittenByAChildThatJoinsTheChargedCgroupFirst) {
  // A plain file stands in for cgroup.procs: a child writes "0" (itself)
  // into it before it writes pages new to the memfd. Pages the memfd holds
  // are overwritten without one (their charge does not move).
  const std::string procs = dir() + "/cgroup.procs";
  ASSERT_TRUE(writeFileAtomic(procs, "", 0600).ok());
  UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd);
  PageStore st(dir());
  st.chargeMirrorsWith([&]() -> Result<int> { return fd.get(); });
  rounds(st, "");
  ASSERT_TRUE(st.assemble().ok());
  auto m = st.mirrors();
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(link(m[0].second), "/memfd: (deleted)");
  EXPECT_EQ(content(m[0].second, 5), std::string("aBC") + '\0' + "e");
  EXPECT_EQ(*readFile(procs), "00") << "round 0 (all new) and the delta's new page 4; round 1 only overwrote";
}

TEST_F(MirrorTest, TheChargedCgroupIsMadeWithTheFirstMirrorOnly) {
  const std::string procs = dir() + "/cgroup.procs";
  ASSERT_TRUE(writeFileAtomic(procs, "", 0600).ok());
  UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  int opened = 0;
  auto opener = [&]() -> Result<int> {
    ++opened;
    return fd.get();
  };
  {
    PageStore st(dir());  // a container without shared memory: no cgroup
    st.chargeMirrorsWith(opener);
    round(0, 5, {{1, 'a'}});
    ASSERT_TRUE(st.applyRounds().ok());
    EXPECT_EQ(opened, 0);
  }
  std::filesystem::remove_all(dir() + "/store");
  PageStore st(dir());
  st.chargeMirrorsWith(opener);
  rounds(st, "/dev/zero");
  ASSERT_TRUE(st.assemble().ok());
  EXPECT_EQ(opened, 1) << "once, for the first mirror";
  EXPECT_EQ(st.mirrors().size(), 1u);
  EXPECT_EQ(*readFile(procs), "00");
}

TEST_F(MirrorTest, ACgroupThatCannotBeMadeKeepsTheObjectInTheStore) {
  PageStore st(dir());
  st.chargeMirrorsWith([]() -> Result<int> { return unavailable("no memory cgroup here"); });
  rounds(st, "/dev/zero");
  ASSERT_TRUE(st.assemble().ok());
  EXPECT_TRUE(st.mirrors().empty());
  EXPECT_EQ(fills(*readFile(dir() + "/pages-2.img")), "aBCe") << "restored from complete images, as before";
}

TEST_F(MirrorTest, AMirrorThatCannotBeWrittenFailsTheRound) {
  // The memfd is the store's only copy of the object.
  const std::string procs = dir() + "/cgroup.procs";
  ASSERT_TRUE(writeFileAtomic(procs, "", 0600).ok());
  UniqueFd readOnly(::open(procs.c_str(), O_RDONLY | O_CLOEXEC));  // the join fails
  PageStore st(dir());
  st.chargeMirrorsWith([&]() -> Result<int> { return readOnly.get(); });
  write("rounds/0000/pages-2147483648.img", page('a'));
  PageSet one;
  one.add(0, P);
  Pagemap pm = roundPagemap(2147483648u, one, one);
  pm.memfdName = "/dev/zero";
  write("rounds/0000/pagemap-shmem-7.img", serializePagemap(pm));
  auto applied = st.applyRounds();
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.message().find("shared memory 7"), std::string::npos) << applied.message();
  EXPECT_NE(applied.message().find("join the memory cgroup"), std::string::npos) << applied.message();
}

TEST_F(MirrorTest, ParentPagesTheMemfdLacksAreAnError) {
  PageStore st(dir());
  rounds(st, "/dev/zero");
  Pagemap shm;
  shm.pagesId = 2;
  shm.entries = {{0, 2, kPeParent}, {8 * P, 1, kPeParent}};  // offset 8 was never sent
  write("pagemap-shmem-7.img", serializePagemap(shm));
  auto as = st.assemble();
  ASSERT_FALSE(as.ok());
  EXPECT_NE(as.status().message().find("that its memfd lacks"), std::string::npos) << as.status().message();
}

TEST_F(MirrorTest, AtMostSoManyObjectsAreKeptInMemfds) {
  // A peer names the objects: each mirror is a descriptor of the agent.
  PageStore st(dir());
  PageSet one;
  one.add(0, P);
  const uint64_t n = PageStore::kMaxMirrors + 3;
  for (uint64_t id = 1; id <= n; ++id) {
    write("rounds/0000/pages-" + std::to_string(1000 + id) + ".img", page('a'));
    Pagemap pm = roundPagemap(static_cast<uint32_t>(1000 + id), one, one);
    pm.memfdName = "/dev/zero";
    write("rounds/0000/pagemap-shmem-" + std::to_string(id) + ".img", serializePagemap(pm));
  }
  ASSERT_TRUE(st.applyRounds().ok());
  for (uint64_t id = 1; id <= n; ++id) {
    Pagemap shm;
    shm.pagesId = static_cast<uint32_t>(5000 + id);
    shm.entries = {{0, 1, kPeParent}};
    write("pagemap-shmem-" + std::to_string(id) + ".img", serializePagemap(shm));
    write("pages-" + std::to_string(5000 + id) + ".img", "");
  }
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  auto m = st.mirrors();
  EXPECT_EQ(m.size(), PageStore::kMaxMirrors);
  std::set<uint64_t> mirrored;
  for (const auto& [shmid, fd] : m) mirrored.insert(shmid);
  for (uint64_t id = 1; id <= n; ++id)  // the rest kept by the store, restored from the images as before
    EXPECT_EQ(fills(*readFile(dir() + "/pages-" + std::to_string(5000 + id) + ".img")), mirrored.count(id) ? "" : "a")
        << id;
}

TEST_F(MirrorTest, NoMirrorWithoutAName) {
  PageStore st(dir());
  rounds(st, std::nullopt);
  ASSERT_TRUE(st.assemble().ok());
  EXPECT_TRUE(st.mirrors().empty());
}

TEST_F(PageStoreTest, SharedMemoryInParentThatTheStoreLacksIsAnError) {
  PageStore st(dir());
  Pagemap shm;
  shm.pagesId = 3;
  shm.entries = {{0, 1, kPeParent}};
  write("pagemap-shmem-99.img", serializePagemap(shm));
  write("pages-3.img", "");
  auto as = st.assemble();
  ASSERT_FALSE(as.ok());
  EXPECT_NE(as.status().message().find("shared memory 99"), std::string::npos) << as.status().toString();
}

TEST_F(PageStoreTest, ChangedPageSetIsRebuiltFromThePieces) {
  PageStore st(dir());
  round(0, 5, {{1, 'a'}, {2, 'b'}});
  ASSERT_TRUE(st.applyRounds().ok());
  round(1, 5, {{9, 'x'}});  // memory that appeared later: outside the layout
  round(2, 5, {{9, 'y'}, {2, 'B'}});
  ASSERT_TRUE(st.applyRounds().ok());
  // Page 1 is gone from the dump, page 3 is new (sent now), 2 and 9 held.
  dump(5, 1, {{2 * P, 1, kPeParent}, {3 * P, 1, kPePresent}, {9 * P, 1, kPeParent}}, page('n'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->rebuilt, 1u);
  EXPECT_EQ(fills(*readFile(dir() + "/pages-1.img")), "Bny");
}

TEST_F(PageStoreTest, ParentPageTheStoreLacksIsAnError) {
  PageStore st(dir());
  round(0, 3, {{1, 'a'}});
  ASSERT_TRUE(st.applyRounds().ok());
  dump(3, 1, {{1 * P, 2, kPeParent}}, "");
  auto as = st.assemble();
  ASSERT_FALSE(as.ok());
  EXPECT_NE(as.status().message().find("not in the store"), std::string::npos) << as.status().message();
}

// Pages that appear or vanish anywhere (before, inside, after the layout,
// in runs or alone) against a plain model: each page of the assembled file
// must hold the content last sent for its address, in address order. Each
// page carries its address and version in its first bytes.
void PageStoreTest::appearOrVanishTrials(bool offsets) {
  auto content = [](uint64_t n, int version) {
    std::string pg(P, static_cast<char>('a' + (n + version) % 26));
    std::snprintf(pg.data(), 32, "page %llu v%d", static_cast<unsigned long long>(n), version);
    return pg;
  };
  uint64_t seed = 42;
  auto rnd = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  uint64_t moved = 0, preMoved = 0;
  for (int trial = 0; trial < 160; ++trial) {
    std::filesystem::remove_all(dir());
    std::filesystem::create_directories(dir());
    PageStore st(dir());
    if (offsets) st.withPagemapOffsets();
    const uint64_t span = 8 + rnd(120);
    std::map<uint64_t, int> held;  // page -> version the store holds
    // Round 0: a random part of the span; later rounds: some of those
    // again and some new pages (outside the layout).
    for (int k = 0; k < 1 + static_cast<int>(rnd(3)); ++k) {
      std::vector<std::pair<uint64_t, std::string>> pages;
      for (uint64_t n = 0; n < span; ++n)
        if (rnd(100) < (k == 0 ? 60u : 15u)) pages.push_back({n, content(n, k)});
      PageSet sent;
      std::string data;
      for (auto& [n, c] : pages) {
        sent.add(n * P, (n + 1) * P);
        data += c;
        held[n] = k;
      }
      char d[32];
      std::snprintf(d, sizeof d, "rounds/%04d/", k);
      write(std::string(d) + "pages-1.img", data);
      write(std::string(d) + "pagemap-1.img", serializePagemap(roundPagemap(1, sent, sent)));
      ASSERT_TRUE(st.applyRounds().ok());
    }
    // The dump: held pages mostly PARENT (some gone), a few sent again, new ones.
    Pagemap pm;
    pm.pagesId = 3;
    std::string delta, want;
    for (uint64_t n = 0; n < span + 4; ++n) {
      uint32_t flags = 0;
      if (held.count(n) && rnd(100) < 85) flags = rnd(100) < 90 ? kPeParent : kPePresent;
      else if (!held.count(n) && rnd(100) < 20) flags = kPePresent;
      if (!flags) continue;
      if (flags == kPePresent) {
        delta += content(n, 9);
        want += content(n, 9);
      } else {
        want += content(n, held[n]);
      }
      if (!pm.entries.empty() && pm.entries.back().flags == (flags | kPeLazy) &&
          pm.entries.back().vaddr + pm.entries.back().pages * P == n * P)
        ++pm.entries.back().pages;
      else pm.entries.push_back({n * P, 1, flags | kPeLazy});
    }
    if (pm.entries.empty()) continue;
    bool anyParent = false;
    for (const auto& e : pm.entries) anyParent |= (e.flags & kPeParent) != 0;
    write("pagemap-1.img", serializePagemap(pm));
    write("pages-3.img", delta);
    // Odd trials: a prelayout first (as the source sends it during the
    // dump), exact or with the mistakes a prediction can make: pages that
    // will be missing, delta pages it did not foresee (never a PARENT page).
    const bool pre = trial % 2 == 1, exact = pre && rnd(3) == 0;
    if (pre) {
      PageSet pred;
      for (const auto& e : pm.entries)
        for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * P; a += P)
          if (exact || (e.flags & kPeParent) || rnd(100) < 80) pred.add(a, a + P);
      if (!exact)
        for (uint64_t n = 0; n < span + 4; ++n)
          if (rnd(100) < 5) pred.add(n * P, (n + 1) * P);
      auto ps = st.prelayout({{1u, pred}});
      ASSERT_TRUE(ps.ok()) << "trial " << trial << ": " << ps.status().toString();
      preMoved += ps->movedBytes + ps->copiedBytes;
    }
    auto as = st.assemble();
    ASSERT_TRUE(as.ok()) << "trial " << trial << ": " << as.status().toString();
    moved += as->movedBytes;
    if (offsets) {
      EXPECT_EQ(as->movedBytes, 0u) << "trial " << trial << ": nothing moves when the entries name their offsets";
      ASSERT_EQ(criuView(1), want) << "trial " << trial;
      continue;
    }
    if (exact) {
      EXPECT_EQ(as->movedBytes, 0u) << "trial " << trial << ": the exact prelayout left moves to the frozen window";
      EXPECT_EQ(as->copiedBytes, 0u) << "trial " << trial;
    }
    if (!anyParent) continue;  // left as CRIU wrote it
    auto got = readFile(dir() + "/pages-3.img");
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), want.size()) << "trial " << trial;
    for (size_t i = 0; i < want.size(); i += P)
      ASSERT_EQ(got->substr(i, 32), want.substr(i, 32)) << "trial " << trial << ", page " << i / P << " of the file";
    ASSERT_EQ(*got, want) << "trial " << trial;
  }
  if (offsets) {
    EXPECT_EQ(moved + preMoved, 0u) << "neither the prelayouts nor the assemblies moved a page";
    return;
  }
  EXPECT_GT(moved, 0u) << "the trials moved pages inside the file";
  EXPECT_GT(preMoved, 0u) << "the prelayouts moved pages";
}

TEST_F(PageStoreTest, PagesThatAppearOrVanishAnywhereAreLaidOutInPlace) { appearOrVanishTrials(false); }

TEST_F(PageStoreTest, WithOffsetsPagesThatAppearOrVanishMoveNothingAndReadBackRight) { appearOrVanishTrials(true); }

TEST_F(PageStoreTest, WithOffsetsTheFlatFileIsHandedOverAsItIs) {
  PageStore st(dir());
  st.withPagemapOffsets();
  round(0, 2, {{10, 'a'}, {11, 'b'}, {12, 'c'}, {20, 'd'}});
  ASSERT_TRUE(st.applyRounds().ok());
  round(1, 2, {{11, 'B'}, {30, 'e'}});  // 30: outside the layout, appended to the flat file
  ASSERT_TRUE(st.applyRounds().ok());
  // 10 vanished; 11, 20, 30 held; 12 sent in the dump; 40 new.
  dump(2, 7,
       {{11 * P, 1, kPeParent | kPeLazy},
        {12 * P, 1, kPePresent | kPeLazy},
        {20 * P, 1, kPeParent | kPeLazy},
        {30 * P, 1, kPeParent | kPeLazy},
        {40 * P, 1, kPePresent | kPeLazy}},
       page('C') + page('f'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->movedBytes, 0u);
  EXPECT_EQ(as->copiedBytes, 0u) << "page 30 went into the flat file in its round";
  EXPECT_EQ(fills(criuView(2)), "BCdef");
  // The round-0 file as it was (the vanished page 10 stays, unnamed) with
  // the delta's page 12 over its stale copy, the page round 1 brought,
  // then the delta's new page.
  EXPECT_EQ(fills(*readFile(dir() + "/pages-7.img")), "aBCdef");
  auto out = parsePagemap(*readFile(dir() + "/pagemap-2.img"));
  ASSERT_TRUE(out.ok());
  const std::vector<PagemapEntry> want = {{11 * P, 2, kPePresent | kPeLazy, 1 * P},
                                          {20 * P, 1, kPePresent | kPeLazy, 3 * P},
                                          {30 * P, 1, kPePresent | kPeLazy, 4 * P},
                                          {40 * P, 1, kPePresent | kPeLazy, 5 * P}};
  EXPECT_EQ(out->entries, want);
  EXPECT_EQ(as->joinedEntries, 1u) << "11 and 12 continue each other in the file";
  EXPECT_FALSE(pathExists(dir() + "/store"));
}

// Offsets are the target's own: a peer's round or dump naming one is refused.
TEST_F(PageStoreTest, AnOffsetFromThePeerIsRefused) {
  Pagemap pm;
  pm.pagesId = 3;
  pm.entries = {{4 * P, 1, kPePresent, 0}};
  write("rounds/0000/pagemap-3.img", serializePagemap(pm));
  write("rounds/0000/pages-3.img", page('a'));
  PageStore st(dir());
  st.withPagemapOffsets();
  auto applied = st.applyRounds();
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.message().find("names an offset"), std::string::npos) << applied.message();

  std::filesystem::remove_all(dir() + "/rounds");
  PageStore other(dir());
  round(0, 5, {{4, 'a'}});
  ASSERT_TRUE(other.applyRounds().ok());
  dump(5, 8, {{4 * P, 1, kPePresent, 0}}, page('b'));
  auto as = other.assemble();
  ASSERT_FALSE(as.ok());
  EXPECT_NE(as.status().message().find("names an offset"), std::string::npos) << as.status().message();
}

// The prelayout does the moves while the source dumps: with a right
// prediction the assembly in the frozen window only writes the delta.
TEST_F(PageStoreTest, PrelayoutLeavesTheAssemblyNothingToMove) {
  PageStore st(dir());
  round(0, 6, {{4, 'a'}, {5, 'b'}, {6, 'c'}, {8, 'd'}});
  ASSERT_TRUE(st.applyRounds().ok());
  round(1, 6, {{1, 'x'}, {5, 'B'}});  // page 1 appeared before the layout
  ASSERT_TRUE(st.applyRounds().ok());
  // Expected dump: 1, 4, 5 held; 2 new (delta); 6 held but freed (gone);
  // 8 held.
  PageSet pred;
  for (uint64_t n : {1, 2, 4, 5, 8}) pred.add(n * P, (n + 1) * P);
  auto ps = st.prelayout({{6u, pred}, {99u, pred}});  // 99: a process the store never saw
  ASSERT_TRUE(ps.ok()) << ps.status().toString();
  EXPECT_EQ(ps->procs, 1u);
  EXPECT_EQ(ps->copiedBytes, P) << "page 1 came from the extra file";
  EXPECT_GT(ps->movedBytes, 0u);
  dump(6, 2, {{1 * P, 1, kPeParent}, {2 * P, 1, kPePresent}, {4 * P, 2, kPeParent}, {8 * P, 1, kPeParent}}, page('n'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok()) << as.status().toString();
  EXPECT_EQ(as->movedBytes, 0u);
  EXPECT_EQ(as->copiedBytes, 0u);
  EXPECT_EQ(fills(*readFile(dir() + "/pages-2.img")), "xnaBd");
}

// One long run (3 MiB, more than the move buffer) shifted by one page to
// the right (a page appeared before it) or to the left (one vanished): the
// overlapping move takes several steps and must not read what it wrote.
TEST_F(PageStoreTest, LongRunsShiftByOnePageEitherWay) {
  for (bool appeared : {true, false}) {
    SCOPED_TRACE(appeared ? "page appeared" : "page vanished");
    std::filesystem::remove_all(dir());
    std::filesystem::create_directories(dir());
    PageStore st(dir());
    const uint64_t run = 768;
    auto content = [](uint64_t n) {
      std::string pg(P, static_cast<char>('a' + n % 26));
      std::snprintf(pg.data(), 32, "page %llu", static_cast<unsigned long long>(n));
      return pg;
    };
    PageSet sent;
    std::string data;
    for (uint64_t n = 1; n <= run + 1; ++n) {
      sent.add(n * P, (n + 1) * P);
      data += content(n);
    }
    write("rounds/0000/pages-4.img", data);
    write("rounds/0000/pagemap-4.img", serializePagemap(roundPagemap(4, sent, sent)));
    ASSERT_TRUE(st.applyRounds().ok());
    Pagemap pm;
    pm.pagesId = 2;
    std::string want;
    if (appeared) {  // page 0 is new, 1..run+1 held
      pm.entries = {{0, 1, kPePresent}, {1 * P, run + 1, kPeParent}};
      write("pages-2.img", content(0));
      for (uint64_t n = 0; n <= run + 1; ++n) want += content(n);
    } else {  // page 1 is gone, 2..run+1 held
      pm.entries = {{2 * P, run, kPeParent}};
      write("pages-2.img", "");
      for (uint64_t n = 2; n <= run + 1; ++n) want += content(n);
    }
    write("pagemap-4.img", serializePagemap(pm));
    auto as = st.assemble();
    ASSERT_TRUE(as.ok()) << as.status().toString();
    EXPECT_EQ(as->movedBytes, (appeared ? run + 1 : run) * P);
    EXPECT_EQ(as->copiedBytes, 0u);
    auto got = readFile(dir() + "/pages-2.img");
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), want.size());
    for (size_t i = 0; i < want.size(); i += P)
      ASSERT_EQ(got->substr(i, 32), want.substr(i, 32)) << "page " << i / P << " of the file";
  }
}

TEST_F(PageStoreTest, UntouchedImagesStayAsTheyAre) {
  PageStore st(dir());
  dump(9, 4, {{1 * P, 1, kPePresent}}, page('z'));
  auto as = st.assemble();
  ASSERT_TRUE(as.ok());
  EXPECT_EQ(fills(*readFile(dir() + "/pages-4.img")), "z");
}

}  // namespace
}  // namespace lxmig::criu
