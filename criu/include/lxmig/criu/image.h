// CRIU's pagemap images, read and written with lxmig's own message
// definitions (proto/lxmig/criu/pagemap.proto). Pre-copy uses them twice:
// each round the source writes, per process, a pagemap + pages pair into
// rounds/NNNN/ on the target (pages sent this round are PRESENT, older
// valid pages PARENT, the round's "parent" link names the previous round);
// after the final dump the source rewrites CRIU's own pagemaps so that
// every page the target already holds becomes PARENT and only the rest
// travels. CRIU then restores from the chain as it would from pre-dumps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/tracking/page_set.h"

namespace lxmig::criu {

constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kPagemapMagic = 0x56084025;
constexpr uint32_t kPeParent = 1u << 0;
constexpr uint32_t kPeLazy = 1u << 1;
constexpr uint32_t kPePresent = 1u << 2;
// Above every user-space address (x86-64 with 5-level page tables: 2^56).
constexpr uint64_t kAddressSpaceEnd = uint64_t{1} << 57;
// The longest pagemap entry lxmig makes by joining (64 MiB of pages; CRIU's
// own entries are far shorter, one pipe's worth). CRIU's lazy-pages daemon (4.2, criu/uffd.c
// collect_iovs) keeps the longest lazy range in an `int` and allocates
// its copy buffer that size: an entry of 2 GiB or more leaves it no usable
// buffer, it fails ("Can't read mapping page -1: Bad address"; or at its
// start, and the restore waits for it until its deadline), and a restored
// container misses the memory not filled yet. The buffer also costs the
// target as much memory as the longest entry while it fills.
constexpr uint64_t kMaxEntryPages = (uint64_t{64} << 20) / 4096;

struct PagemapEntry {
  uint64_t vaddr = 0;
  uint64_t pages = 0;
  uint32_t flags = 0;
  // Where the pages start in the pages file (CRIU with lxmig's
  // pagemap-offsets patch), page-aligned; none: right after the previous
  // present entry's, as CRIU writes them.
  std::optional<uint64_t> offset;
  bool operator==(const PagemapEntry&) const = default;
};

// The longest name memfd_create(2) takes (MFD_NAME_MAX_LEN).
constexpr size_t kMaxMemfdName = 249;

struct Pagemap {
  uint32_t pagesId = 0;
  std::vector<PagemapEntry> entries;
  // A round's pagemap of a shared memory object: the name of the memfd CRIU
  // restores it as (lxmig's field of the head; at most kMaxMemfdName bytes,
  // no NUL). Nothing for a process, or when the source does not know it.
  std::optional<std::string> memfdName;
};

// Pages of the entries of `pm` that carry any of `flags` (kPePresent: in its
// pages file; kPeParent: in the parent's).
uint64_t pagesWith(const Pagemap& pm, uint32_t flags);

// The number N of a CRIU image name `<kind>N.img` (kind "pagemap-" or
// "netdev-", say; N decimal, canonical, 0..max), or nothing when the name
// has another grammar: "pagemap-shmem-5.img" is not a "pagemap-" one.
// Names of an images directory may be a peer's.
std::optional<uint64_t> imageNumber(std::string_view kind, std::string_view name, uint64_t max);

// InvalidArgument names what is wrong with the bytes.
Result<Pagemap> parsePagemap(std::string_view bytes);
std::string serializePagemap(const Pagemap& pm);

// A round's pagemap: every range of `valid` (what the target holds after
// this round), split into PRESENT pieces (`sentNow`, whose data is this
// round's pages file in address order) and PARENT pieces.
Pagemap roundPagemap(uint32_t pagesId, const tracking::PageSet& valid, const tracking::PageSet& sentNow);

// Rewrites CRIU's final pagemap: PRESENT pages inside `onTarget` become
// PARENT (LAZY kept), the others stay and their data is copied from the
// original pages file: `copy` lists (offset, length) in that file, in order.
struct PagemapRewrite {
  Pagemap pagemap;
  std::vector<std::pair<uint64_t, uint64_t>> copy;
  uint64_t parentPages = 0;
  uint64_t presentPages = 0;
};
PagemapRewrite rewritePagemap(const Pagemap& in, const tracking::PageSet& onTarget);

// Joins each entry to the one before it when both have the same flags and
// the first ends where the second begins, up to kMaxEntryPages (the pages
// file is in entry order, so its bytes stay as they are); returns how many
// entries went.
// CRIU's lazy-pages daemon fills memory an entry at a time: after pre-copy
// a process's memory comes in many small entries (the rounds' pieces made
// PRESENT), and one per contiguous range fills it several times faster.
size_t joinAdjacentEntries(Pagemap& pm);

// What CRIU's lazy-pages daemon reads as it starts, before any restore
// connects to it (prepare_dummy_pstree): inventory.img, pstree.img and each
// process's ids-N.img. A file of the images whose name begins with one of
// these is one of them. One it reads while it is still being written (an
// empty file, or half an entry) makes it exit: "Unexpected EOF".
inline const std::vector<std::string> kLazyPagesStartupInputs = {"ids-", "inventory.img", "pstree.img"};

// Says when the daemon can start while the images still arrive: at the
// header of the first file after every file it reads at start-up is whole,
// whichever order the sender chose (those files first, as lxmig's source
// sends them, or plain name order).
class LazyStartGate {
 public:
  // The header of the next file of the images; true once, when the daemon
  // may start.
  bool next(std::string_view name);

 private:
  uint32_t seen_ = 0;  // bit k: a file of kLazyPagesStartupInputs[k] seen
  bool opened_ = false;
};

// FIFOs (proto/lxmig/criu/files.proto). CRIU saves the bytes waiting in a
// FIFO and writes them back into the FIFO it reopens by path; where that
// path still names the same kernel object (a merge, or two test bed nodes
// sharing one kernel and a bind directory), the bytes are still in it and
// must not be written again.
constexpr uint32_t kFilesMagic = 0x56303138;
constexpr uint32_t kFifoDataMagic = 0x59333054;
// The path of each FIFO of files.img, by pipe id. InvalidArgument names
// what is wrong with the bytes.
Result<std::map<uint32_t, std::string>> fifoPaths(std::string_view filesImg);
// fifo-data.img without the entries of the pipe ids in `drop`; `dropped`
// (optional) counts them.
Result<std::string> dropFifoData(std::string_view fifoData, const std::set<uint32_t>& drop, size_t* dropped);

// Links (proto/lxmig/criu/netdev.proto). When CRIU rebuilds a container's
// network namespace it makes the links of netdev-N.img (N: the namespace's
// id) with their MTUs before it restores any socket; the target lowers
// them for the restore and raises them after (net::restoreMtu says why).
constexpr uint32_t kNetdevMagic = 0x57373951;
constexpr uint32_t kNdLoopback = 1;
constexpr uint32_t kNdVeth = 2;
// IPv6's per-link "mtu" sysctl: its place among a link's conf6 entries
// (devconfs6 in CRIU's criu/net.c, the same in 4.x). CRIU writes it after
// it set the link's MTU, and the kernel refuses one above that.
constexpr int kConf6Mtu = 26;
struct LinkMtu {
  uint32_t type = 0;  // kNdLoopback, kNdVeth, ...
  std::string name;
  uint32_t mtu = 0;
  std::optional<int32_t> ipv6Mtu;  // conf6's "mtu", when the image holds one
};
// netdev-N.img with each link's MTUs as `edit` leaves them (it sees every
// link in order); a link it leaves alone keeps its bytes. InvalidArgument
// names what is wrong with the bytes.
Result<std::string> editNetdevMtus(std::string_view netdevImg, const std::function<void(LinkMtu&)>& edit);

}  // namespace lxmig::criu
