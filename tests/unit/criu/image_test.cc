#include "lxmig/criu/image.h"

#include <gtest/gtest.h>

#include <cstring>

#include "lxmig/criu/files.pb.h"
#include "lxmig/criu/netdev.pb.h"

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

TEST(CriuImage, PagesWithCountsTheEntriesCarryingAFlag) {
  const Pagemap pm{1, {{0x1000, 3, kPePresent | kPeLazy}, {0x9000, 2, kPeParent}, {0xf000, 4, 0}}};
  EXPECT_EQ(pagesWith(pm, kPePresent), 3u);
  EXPECT_EQ(pagesWith(pm, kPeParent), 2u);
  EXPECT_EQ(pagesWith(pm, kPeParent | kPePresent), 5u) << "either flag";
  EXPECT_EQ(pagesWith(pm, kPeLazy), 3u);
  EXPECT_EQ(pagesWith(Pagemap{}, kPePresent), 0u);
}

TEST(CriuImage, AnOffsetTravelsOnPresentEntriesAtPageBoundariesOnly) {
  Pagemap pm{2, {{0x1000, 2, kPePresent, 5 * P}, {0x9000, 1, kPeParent}}};
  auto back = parsePagemap(serializePagemap(pm));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->entries, pm.entries);
  EXPECT_FALSE(back->entries[1].offset) << "none unless written";
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{2, {{0x1000, 1, kPePresent, 100}}})).ok()) << "unaligned";
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{2, {{0x1000, 1, kPeParent, 0}}})).ok()) << "not present";
}

TEST(CriuImage, EntriesJoinOnlyWhereTheirPagesContinueInTheFile) {
  Pagemap pm{1,
             {{0x1000, 1, kPePresent, 0},
              {0x2000, 1, kPePresent, P},      // continues: joined
              {0x3000, 1, kPePresent, 7 * P},  // elsewhere in the file
              {0x4000, 1, kPePresent},         // no offset after one with
              {0x5000, 1, kPePresent}}};       // both without: joined
  EXPECT_EQ(joinAdjacentEntries(pm), 2u);
  const std::vector<PagemapEntry> want = {
      {0x1000, 2, kPePresent, 0}, {0x3000, 1, kPePresent, 7 * P}, {0x4000, 2, kPePresent}};
  EXPECT_EQ(pm.entries, want);
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

TEST(CriuImage, MemfdNameTravelsInTheHeadWithinTheKernelsBounds) {
  Pagemap pm{3, {{0, 2, kPePresent}}};
  pm.memfdName = "/dev/zero";
  auto back = parsePagemap(serializePagemap(pm));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->memfdName, std::optional<std::string>("/dev/zero"));
  EXPECT_FALSE(parsePagemap(serializePagemap(Pagemap{3, {}})).value().memfdName) << "none unless sent";
  pm.memfdName = "";
  EXPECT_EQ(parsePagemap(serializePagemap(pm)).value().memfdName, std::optional<std::string>(""));
  pm.memfdName = std::string(kMaxMemfdName, 'x');
  EXPECT_TRUE(parsePagemap(serializePagemap(pm)).ok());
  pm.memfdName = std::string(kMaxMemfdName + 1, 'x');
  auto tooLong = parsePagemap(serializePagemap(pm));
  ASSERT_FALSE(tooLong.ok());
  EXPECT_NE(tooLong.status().message().find("bad memfd name"), std::string::npos) << tooLong.status().message();
  pm.memfdName = std::string("a\0b", 3);
  EXPECT_FALSE(parsePagemap(serializePagemap(pm)).ok()) << "memfd_create stops at a NUL";
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

TEST(CriuImage, JoinsOnlyContiguousEntriesOfTheSameFlags) {
  Pagemap pm;
  pm.pagesId = 4;
  pm.entries = {{0, 2, kPePresent | kPeLazy},     {2 * P, 1, kPePresent | kPeLazy},
                {3 * P, 4, kPePresent | kPeLazy}, {7 * P, 1, kPePresent},  // other flags
                {9 * P, 1, kPePresent},                                    // a gap before it
                {10 * P, 2, kPePresent}};
  EXPECT_EQ(joinAdjacentEntries(pm), 3u);
  std::vector<PagemapEntry> want = {{0, 7, kPePresent | kPeLazy}, {7 * P, 1, kPePresent}, {9 * P, 3, kPePresent}};
  EXPECT_EQ(pm.entries, want);
  EXPECT_EQ(pm.pagesId, 4u);
  EXPECT_EQ(joinAdjacentEntries(pm), 0u) << "nothing left to join";
}

TEST(CriuImage, NoEntryLongerThanTheLazyDaemonCanCopy) {
  // 4 GiB of contiguous memory in 1 MiB pieces, as a dump of W5 gives
  // them: joined, but never past kMaxEntryPages (CRIU's lazy-pages daemon
  // fails on an entry of 2 GiB or more).
  constexpr uint64_t kPieces = 4096, kPiecePages = 256;
  Pagemap pm;
  for (uint64_t i = 0; i < kPieces; ++i) pm.entries.push_back({i * kPiecePages * P, kPiecePages, kPePresent | kPeLazy});
  joinAdjacentEntries(pm);
  ASSERT_EQ(pm.entries.size(), kPieces * kPiecePages / kMaxEntryPages);
  uint64_t next = 0;
  for (const auto& e : pm.entries) {
    EXPECT_EQ(e.vaddr, next);
    EXPECT_EQ(e.pages, kMaxEntryPages);
    next = e.vaddr + e.pages * P;
  }
  // One range the target holds whole: its PARENT entries are cut too.
  Pagemap dumped;
  dumped.entries = pm.entries;
  tracking::PageSet held;
  held.add(0, next);
  auto rw = rewritePagemap(dumped, held);
  ASSERT_EQ(rw.pagemap.entries.size(), pm.entries.size());
  for (const auto& e : rw.pagemap.entries) EXPECT_LE(e.pages, kMaxEntryPages);
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

// A link entry as CRIU writes it: the fields lxmig names, then its flags
// (4) and MAC (7), which lxmig does not name and must keep.
std::string linkEntry(uint32_t type, const std::string& name, uint32_t mtu, std::optional<int32_t> ipv6Mtu) {
  pb::NetDeviceEntry e;
  e.set_type(type);
  e.set_ifindex(type == kNdLoopback ? 1 : 2);
  e.set_mtu(mtu);
  e.set_name(name);
  for (int i = 0; ipv6Mtu && i < 40; ++i) {
    pb::SysctlEntry* c = e.add_conf6();
    c->set_type(6);
    c->set_iarg(i == kConf6Mtu ? *ipv6Mtu : i);
  }
  return e.SerializeAsString() + std::string("\x20\xc3\x88\x04", 4) +
         std::string("\x3a\x06\x00\x16\x3e\x01\x02\x03", 8);
}
std::string netdevImage(const std::vector<std::string>& entries) {
  std::string img = image(kNetdevMagic);
  for (const auto& e : entries) {
    const uint32_t len = static_cast<uint32_t>(e.size());
    img.append(reinterpret_cast<const char*>(&len), 4);
    img += e;
  }
  return img;
}

TEST(CriuNetdev, EditsTheMtusAndKeepsTheRest) {
  const std::string in =
      netdevImage({linkEntry(kNdLoopback, "lo", 65536, 65536), linkEntry(kNdVeth, "eth0", 1500, 1400),
                   linkEntry(3, "tun0", 1500, std::nullopt)});
  std::vector<LinkMtu> seen;
  auto out = editNetdevMtus(in, [&](LinkMtu& l) {
    seen.push_back(l);
    if (l.type == kNdVeth || l.type == kNdLoopback) {
      l.mtu -= 1;
      if (l.ipv6Mtu) *l.ipv6Mtu -= 2;
    }
  });
  ASSERT_TRUE(out.ok()) << out.status().toString();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].name, "lo");
  EXPECT_EQ(seen[0].mtu, 65536u);
  EXPECT_EQ(seen[0].ipv6Mtu, 65536);
  EXPECT_EQ(seen[1].name, "eth0");
  EXPECT_EQ(seen[1].ipv6Mtu, 1400);
  EXPECT_EQ(seen[2].type, 3u);
  EXPECT_FALSE(seen[2].ipv6Mtu);

  // Read again: the new values, and each entry's flags and MAC still there.
  std::vector<LinkMtu> again;
  auto same = editNetdevMtus(*out, [&](LinkMtu& l) { again.push_back(l); });
  ASSERT_TRUE(same.ok()) << same.status().toString();
  EXPECT_EQ(*same, *out) << "unchanged links keep their bytes";
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].mtu, 65535u);
  EXPECT_EQ(again[0].ipv6Mtu, 65534);
  EXPECT_EQ(again[1].mtu, 1499u);
  EXPECT_EQ(again[1].ipv6Mtu, 1398);
  EXPECT_EQ(again[2].mtu, 1500u);
  size_t macs = 0;
  for (size_t at = out->find("\x3a\x06\x00\x16\x3e"); at != std::string::npos;
       at = out->find("\x3a\x06\x00\x16\x3e", at + 1))
    ++macs;
  EXPECT_EQ(macs, 3u);
  // The tun entry (not touched) is byte for byte the input's.
  EXPECT_EQ(out->substr(out->size() - linkEntry(3, "tun0", 1500, std::nullopt).size()),
            linkEntry(3, "tun0", 1500, std::nullopt));
}

TEST(CriuNetdev, RejectsGarbage) {
  auto none = [](LinkMtu&) {};
  EXPECT_FALSE(editNetdevMtus("short", none).ok());
  EXPECT_FALSE(editNetdevMtus(image(kFilesMagic), none).ok()) << "wrong magic";
  std::string cut = netdevImage({linkEntry(kNdVeth, "eth0", 1500, 1500)});
  cut.resize(cut.size() - 3);
  EXPECT_FALSE(editNetdevMtus(cut, none).ok());
  pb::NetDeviceEntry noMtu;
  noMtu.set_type(kNdVeth);
  noMtu.set_name("eth0");
  EXPECT_FALSE(editNetdevMtus(netdevImage({noMtu.SerializeAsString()}), none).ok());
  auto empty = editNetdevMtus(image(kNetdevMagic), none);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, image(kNetdevMagic));
}

// Image names are a peer's: only `<kind>N.img` with a canonical number in
// bounds is one of that kind.
TEST(CriuImage, ImageNumberTakesOnlyItsOwnGrammar) {
  EXPECT_EQ(imageNumber("pagemap-", "pagemap-12.img", UINT32_MAX), 12u);
  EXPECT_EQ(imageNumber("pagemap-shmem-", "pagemap-shmem-98307.img", UINT64_MAX), 98307u);
  EXPECT_EQ(imageNumber("netdev-", "netdev-9.img", UINT32_MAX), 9u);
  for (const char* bad :
       {"pagemap-shmem-5.img", "pagemap-.img", "pagemap-12.im", "pagemap-012.img", "pagemap-1a.img", "pagemap--1.img",
        "pagemap-4294967296.img", "pagemap-12.img.x", "xpagemap-12.img", "pagemap-99999999999999999999999.img"})
    EXPECT_FALSE(imageNumber("pagemap-", bad, UINT32_MAX)) << bad;
}

// The daemon reads inventory.img, pstree.img and every ids-N.img as it
// starts: it may start at the first header after all of them, never
// before (stop 43's CI: it read an ids file the target had only created),
// and only once, in lxmig's order or in plain name order.
TEST(CriuLazyStart, OpensAfterEveryStartupFileWhicheverTheOrder) {
  auto opensAt = [](const std::vector<std::string>& names) {
    LazyStartGate g;
    std::string at;
    for (const auto& n : names)
      if (g.next(n)) {
        EXPECT_TRUE(at.empty()) << "opened twice";
        at = n;
      }
    return at;
  };
  EXPECT_EQ(opensAt({".", "pages-1.img", "ids-1.img", "ids-12.img", "inventory.img", "pstree.img", "cgroup.img",
                     "core-1.img"}),
            "cgroup.img");
  EXPECT_EQ(opensAt({".", "cgroup.img", "core-1.img", "ids-1.img", "ids-12.img", "inventory.img", "mm-1.img",
                     "pstree.img", "tty-info.img", "utsns-1.img"}),
            "tty-info.img");
  EXPECT_EQ(opensAt({"inventory.img", "pstree.img", "core-1.img"}), "") << "no ids file yet";
  EXPECT_EQ(opensAt({"ids-1.img", "pstree.img", "core-1.img"}), "") << "no inventory yet";
}

}  // namespace
}  // namespace lxmig::criu
