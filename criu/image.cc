#include "lxmig/criu/image.h"

#include <algorithm>
#include <cstring>

#include "lxmig/base/grammar.h"
#include "lxmig/criu/files.pb.h"
#include "lxmig/criu/netdev.pb.h"
#include "lxmig/criu/pagemap.pb.h"

namespace lxmig::criu {

using tracking::kPageSize;
using tracking::PageSet;
using tracking::Range;
namespace {

uint32_t readU32(std::string_view b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

void appendU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

void appendMessage(std::string& out, const google::protobuf::MessageLite& m) {
  std::string s = m.SerializeAsString();
  appendU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Appends a range, continuing the last entry when it can and the result
// stays within kMaxEntryPages (a range longer than that on its own, which
// CRIU never writes, is kept whole).
void addEntry(Pagemap& pm, uint64_t vaddr, uint64_t pages, uint32_t flags,
              std::optional<uint64_t> offset = std::nullopt) {
  if (pages == 0) return;
  if (!pm.entries.empty()) {
    auto& last = pm.entries.back();
    const bool filesContinue =
        last.offset.has_value() == offset.has_value() && (!offset || *last.offset + last.pages * kPageSize == *offset);
    if (last.flags == flags && last.vaddr + last.pages * kPageSize == vaddr && filesContinue &&
        last.pages <= kMaxEntryPages && pages <= kMaxEntryPages - last.pages) {
      last.pages += pages;
      return;
    }
  }
  pm.entries.push_back({vaddr, pages, flags, offset});
}

}  // namespace

std::optional<uint64_t> imageNumber(std::string_view kind, std::string_view name, uint64_t max) {
  constexpr std::string_view kExt = ".img";
  if (!name.starts_with(kind) || !name.ends_with(kExt) || name.size() <= kind.size() + kExt.size()) return std::nullopt;
  auto n = parseUint(name.substr(kind.size(), name.size() - kind.size() - kExt.size()), "image number", 0, max);
  return n.ok() ? std::optional<uint64_t>(*n) : std::nullopt;
}

Result<Pagemap> parsePagemap(std::string_view b) {
  if (b.size() < 12) return invalidArgument("pagemap image too short (" + std::to_string(b.size()) + " bytes)");
  if (readU32(b, 0) != kImgCommonMagic || readU32(b, 4) != kPagemapMagic)
    return invalidArgument("not a CRIU pagemap image (bad magic)");
  size_t off = 8;
  Pagemap pm;
  bool head = true;
  while (off < b.size()) {
    if (b.size() - off < 4) return invalidArgument("pagemap image truncated at byte " + std::to_string(off));
    uint32_t len = readU32(b, off);
    off += 4;
    if (b.size() - off < len) return invalidArgument("pagemap image truncated at byte " + std::to_string(off));
    std::string_view msg = b.substr(off, len);
    off += len;
    if (head) {
      pb::PagemapHead h;
      if (!h.ParseFromArray(msg.data(), static_cast<int>(msg.size())) || !h.has_pages_id())
        return invalidArgument("bad pagemap head");
      pm.pagesId = h.pages_id();
      if (h.has_lxmig_memfd_name()) {
        const std::string& name = h.lxmig_memfd_name();
        if (name.size() > kMaxMemfdName || name.find('\0') != std::string::npos)
          return invalidArgument("bad memfd name in the pagemap head (" + std::to_string(name.size()) +
                                 " bytes; at most " + std::to_string(kMaxMemfdName) + ", no NUL)");
        pm.memfdName = name;
      }
      head = false;
      continue;
    }
    pb::PagemapEntry e;
    if (!e.ParseFromArray(msg.data(), static_cast<int>(msg.size())) || !e.has_vaddr())
      return invalidArgument("bad pagemap entry #" + std::to_string(pm.entries.size()));
    PagemapEntry pe;
    pe.vaddr = e.vaddr();
    pe.pages = e.has_nr_pages() ? e.nr_pages() : e.compat_nr_pages();
    if (e.has_flags()) pe.flags = e.flags();
    else pe.flags = (e.has_in_parent() && e.in_parent()) ? kPeParent : kPePresent;
    if (e.has_lxmig_off()) {
      if (e.lxmig_off() % kPageSize != 0 || !(pe.flags & kPePresent))
        return invalidArgument("pagemap entry #" + std::to_string(pm.entries.size()) +
                               ": an offset that is not a present entry's page boundary");
      pe.offset = e.lxmig_off();
    }
    if (pe.vaddr % kPageSize != 0) return invalidArgument("pagemap entry at unaligned address");
    // Addresses of a process: the end of the range must not wrap (its
    // end is computed below and by every user of the entry).
    if (pe.pages == 0 || pe.vaddr >= kAddressSpaceEnd || pe.pages > (kAddressSpaceEnd - pe.vaddr) / kPageSize)
      return invalidArgument("pagemap entry #" + std::to_string(pm.entries.size()) + " outside the address space");
    if (!pm.entries.empty()) {
      const auto& prev = pm.entries.back();
      if (pe.vaddr < prev.vaddr + prev.pages * kPageSize) return invalidArgument("pagemap entries overlap or unsorted");
    }
    pm.entries.push_back(pe);
  }
  if (head) return invalidArgument("pagemap image has no head");
  return pm;
}

uint64_t pagesWith(const Pagemap& pm, uint32_t flags) {
  uint64_t n = 0;
  for (const auto& e : pm.entries)
    if (e.flags & flags) n += e.pages;
  return n;
}

std::string serializePagemap(const Pagemap& pm) {
  std::string out;
  appendU32(out, kImgCommonMagic);
  appendU32(out, kPagemapMagic);
  pb::PagemapHead h;
  h.set_pages_id(pm.pagesId);
  if (pm.memfdName) h.set_lxmig_memfd_name(*pm.memfdName);
  appendMessage(out, h);
  for (const auto& pe : pm.entries) {
    pb::PagemapEntry e;
    e.set_vaddr(pe.vaddr);
    e.set_compat_nr_pages(static_cast<uint32_t>(pe.pages));
    e.set_flags(pe.flags);
    e.set_nr_pages(pe.pages);
    if (pe.offset) e.set_lxmig_off(*pe.offset);
    appendMessage(out, e);
  }
  return out;
}

Pagemap roundPagemap(uint32_t pagesId, const PageSet& valid, const PageSet& sentNow) {
  Pagemap pm;
  pm.pagesId = pagesId;
  for (const auto& [s, e] : valid.raw()) {
    uint64_t cur = s;
    sentNow.forEachOverlap(s, e, [&](uint64_t a, uint64_t b) {
      addEntry(pm, cur, (a - cur) / kPageSize, kPeParent);
      addEntry(pm, a, (b - a) / kPageSize, kPePresent);
      cur = b;
    });
    addEntry(pm, cur, (e - cur) / kPageSize, kPeParent);
  }
  return pm;
}

PagemapRewrite rewritePagemap(const Pagemap& in, const PageSet& onTarget) {
  PagemapRewrite out;
  out.pagemap.pagesId = in.pagesId;
  uint64_t fileOff = 0;  // offset of the entry's first page in the old pages file
  for (const auto& pe : in.entries) {
    const uint64_t end = pe.vaddr + pe.pages * kPageSize;
    if (!(pe.flags & kPePresent)) {
      // Already in a parent, or a hole: unchanged, no data.
      addEntry(out.pagemap, pe.vaddr, pe.pages, pe.flags);
      continue;
    }
    const uint32_t parentFlags = (pe.flags & ~kPePresent) | kPeParent;
    uint64_t cur = pe.vaddr;
    auto keep = [&](uint64_t a, uint64_t b) {  // data travels
      if (a >= b) return;
      addEntry(out.pagemap, a, (b - a) / kPageSize, pe.flags);
      uint64_t o = fileOff + (a - pe.vaddr);
      if (!out.copy.empty() && out.copy.back().first + out.copy.back().second == o) out.copy.back().second += b - a;
      else out.copy.emplace_back(o, b - a);
      out.presentPages += (b - a) / kPageSize;
    };
    onTarget.forEachOverlap(pe.vaddr, end, [&](uint64_t a, uint64_t b) {
      keep(cur, a);
      addEntry(out.pagemap, a, (b - a) / kPageSize, parentFlags);
      out.parentPages += (b - a) / kPageSize;
      cur = b;
    });
    keep(cur, end);
    fileOff += pe.pages * kPageSize;
  }
  return out;
}

size_t joinAdjacentEntries(Pagemap& pm) {
  Pagemap joined;
  for (const auto& e : pm.entries) addEntry(joined, e.vaddr, e.pages, e.flags, e.offset);
  const size_t gone = pm.entries.size() - joined.entries.size();
  pm.entries = std::move(joined.entries);
  return gone;
}

namespace {

// Calls `each(message, offset after it)` for each length-prefixed message
// of an image with the given magic; `each` returns the bytes that follow
// the message (0 for most images) or an error.
template <typename Each>
Status forEachMessage(std::string_view b, uint32_t magic, const char* what, Each each) {
  if (b.size() < 8 || readU32(b, 0) != kImgCommonMagic || readU32(b, 4) != magic)
    return invalidArgument(std::string("not a CRIU ") + what + " image (bad magic)");
  size_t off = 8;
  while (off < b.size()) {
    if (b.size() - off < 4)
      return invalidArgument(std::string(what) + " image truncated at byte " + std::to_string(off));
    const uint32_t len = readU32(b, off);
    off += 4;
    if (b.size() - off < len)
      return invalidArgument(std::string(what) + " image truncated at byte " + std::to_string(off));
    const size_t start = off - 4;
    std::string_view msg = b.substr(off, len);
    off += len;
    Result<uint64_t> trailing = each(msg, start);
    if (!trailing.ok()) return trailing.status();
    if (b.size() - off < *trailing)
      return invalidArgument(std::string(what) + " image: data past its end at byte " + std::to_string(off));
    off += *trailing;
  }
  return okStatus();
}

}  // namespace

Result<std::map<uint32_t, std::string>> fifoPaths(std::string_view filesImg) {
  std::map<uint32_t, std::string> regPath;               // RegFile id -> path
  std::vector<std::pair<uint32_t, uint32_t>> fifoToReg;  // pipe id, RegFile id
  LXMIG_RETURN_IF_ERROR(
      forEachMessage(filesImg, kFilesMagic, "files", [&](std::string_view m, size_t) -> Result<uint64_t> {
        pb::FileEntry e;
        if (!e.ParseFromArray(m.data(), static_cast<int>(m.size())))
          return invalidArgument("bad file entry in files image");
        if (e.has_reg() && e.reg().has_id()) regPath[e.reg().id()] = e.reg().name();
        if (e.has_fifo() && e.fifo().has_pipe_id() && e.fifo().has_regf_id())
          fifoToReg.emplace_back(e.fifo().pipe_id(), e.fifo().regf_id());
        return uint64_t{0};
      }));
  std::map<uint32_t, std::string> out;
  for (const auto& [pipe, reg] : fifoToReg) {
    auto it = regPath.find(reg);
    if (it == regPath.end())
      return invalidArgument("files image: FIFO of pipe " + std::to_string(pipe) + " names no file " +
                             std::to_string(reg));
    out[pipe] = it->second;
  }
  return out;
}

Result<std::string> dropFifoData(std::string_view fifoData, const std::set<uint32_t>& drop, size_t* dropped) {
  std::string out(fifoData.substr(0, std::min<size_t>(8, fifoData.size())));
  size_t n = 0;
  LXMIG_RETURN_IF_ERROR(
      forEachMessage(fifoData, kFifoDataMagic, "FIFO data", [&](std::string_view m, size_t start) -> Result<uint64_t> {
        pb::PipeData d;
        if (!d.ParseFromArray(m.data(), static_cast<int>(m.size())) || !d.has_pipe_id())
          return invalidArgument("bad entry in FIFO data image");
        const size_t end = start + 4 + m.size();
        const uint64_t bytes = d.bytes();
        if (fifoData.size() - end < bytes)
          return invalidArgument("FIFO data image: " + std::to_string(bytes) + " bytes of pipe " +
                                 std::to_string(d.pipe_id()) + " past its end");
        if (drop.count(d.pipe_id())) ++n;
        else out.append(fifoData.substr(start, end - start + bytes));
        return bytes;
      }));
  if (dropped) *dropped = n;
  return out;
}

Result<std::string> editNetdevMtus(std::string_view netdevImg, const std::function<void(LinkMtu&)>& edit) {
  std::string out(netdevImg.substr(0, std::min<size_t>(8, netdevImg.size())));
  LXMIG_RETURN_IF_ERROR(
      forEachMessage(netdevImg, kNetdevMagic, "netdev", [&](std::string_view m, size_t start) -> Result<uint64_t> {
        pb::NetDeviceEntry e;
        if (!e.ParseFromArray(m.data(), static_cast<int>(m.size())) || !e.has_type() || !e.has_mtu())
          return invalidArgument("bad link entry in netdev image");
        LinkMtu link{.type = e.type(), .name = e.name(), .mtu = e.mtu()};
        pb::SysctlEntry* v6 = nullptr;
        if (e.conf6_size() > kConf6Mtu && e.conf6(kConf6Mtu).type() == 6 && e.conf6(kConf6Mtu).has_iarg()) {
          v6 = e.mutable_conf6(kConf6Mtu);
          link.ipv6Mtu = v6->iarg();
        }
        LinkMtu was = link;
        edit(link);
        if (link.mtu == was.mtu && link.ipv6Mtu == was.ipv6Mtu) {
          out.append(netdevImg.substr(start, 4 + m.size()));
          return uint64_t{0};
        }
        e.set_mtu(link.mtu);
        if (v6 && link.ipv6Mtu) v6->set_iarg(*link.ipv6Mtu);
        appendMessage(out, e);  // no longer than it was plus a few bytes of varints
        return uint64_t{0};
      }));
  return out;
}

bool LazyStartGate::next(std::string_view name) {
  bool startup = false;
  for (size_t k = 0; k < kLazyPagesStartupInputs.size(); ++k)
    if (name.starts_with(kLazyPagesStartupInputs[k])) {
      seen_ |= uint32_t{1} << k;
      startup = true;
    }
  const uint32_t all = (uint32_t{1} << kLazyPagesStartupInputs.size()) - 1;
  if (startup || opened_ || seen_ != all) return false;
  opened_ = true;
  return true;
}

}  // namespace lxmig::criu
