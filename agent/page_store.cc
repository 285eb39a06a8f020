#include "page_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "criu_image.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"

namespace lxmig::agent {
namespace {

std::string roundDirName(int k) {
  char b[32];
  std::snprintf(b, sizeof b, "rounds/%04d", k);
  return b;
}

// pagemap-<N>.img files of a directory (not pagemap-shmem-*).
std::vector<std::pair<uint32_t, std::string>> pagemapsIn(const std::string& dir) {
  std::vector<std::pair<uint32_t, std::string>> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (!startsWith(n, "pagemap-") || n.size() < 13 || n.substr(n.size() - 4) != ".img") continue;
    std::string num = n.substr(8, n.size() - 12);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(static_cast<uint32_t>(std::stoul(num)), dir + "/" + n);
  }
  ::closedir(d);
  return out;
}

UniqueFd openOrFail(const std::string& path, int flags, Status& st) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  if (!fd && st.ok()) st = Status::fromErrno("open", path);
  return fd;
}

}  // namespace

std::string PageStore::flatPath(uint32_t vpid) const { return dir_ + "/store/flat-" + std::to_string(vpid) + ".img"; }
std::string PageStore::extraPath(uint32_t vpid) const { return dir_ + "/store/extra-" + std::to_string(vpid) + ".img"; }

uint64_t PageStore::flatOffset(const Proc& p, uint64_t addr) {
  auto it = p.layout.upper_bound(addr);
  if (it == p.layout.begin()) return UINT64_MAX;
  --it;
  if (addr >= it->second.first) return UINT64_MAX;
  return it->second.second + (addr - it->first);
}

Status PageStore::applyRounds() {
  for (;;) {
    const std::string rd = dir_ + "/" + roundDirName(nextRound_);
    if (!pathExists(rd)) return okStatus();
    LXMIG_RETURN_IF_ERROR(applyRound(nextRound_));
    LXMIG_RETURN_IF_ERROR(removeTree(rd));
    ++nextRound_;
  }
}

Status PageStore::applyRound(int k) {
  const std::string rd = dir_ + "/" + roundDirName(k);
  LXMIG_RETURN_IF_ERROR(makeDirs(dir_ + "/store", 0700));
  for (const auto& [vpid, pmPath] : pagemapsIn(rd)) {
    LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(pmPath));
    auto pm = parsePagemap(text);
    if (!pm.ok()) return pm.status().withContext(pmPath);
    const std::string pages = rd + "/pages-" + std::to_string(pm->pagesId) + ".img";
    auto found = procs_.find(vpid);
    if (found == procs_.end()) {
      // First pages of this process: they are its flat store, as they are.
      Proc p;
      for (const auto& e : pm->entries) {
        if (!(e.flags & kPePresent)) continue;
        p.layout[e.vaddr] = {e.vaddr + e.pages * kPageSize, p.layoutPages * kPageSize};
        p.layoutPages += e.pages;
      }
      if (::rename(pages.c_str(), flatPath(vpid).c_str()) != 0) return Status::fromErrno("rename", pages);
      procs_[vpid] = std::move(p);
      continue;
    }
    Proc& p = found->second;
    Status st;
    UniqueFd in = openOrFail(pages, O_RDONLY, st);
    UniqueFd flat = openOrFail(flatPath(vpid), O_WRONLY, st);
    UniqueFd extra = openOrFail(extraPath(vpid), O_WRONLY | O_CREAT, st);
    LXMIG_RETURN_IF_ERROR(st);
    uint64_t src = 0;
    for (const auto& e : pm->entries) {
      if (!(e.flags & kPePresent)) continue;
      for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize;) {
        uint64_t off = flatOffset(p, a);
        if (off != UINT64_MAX) {
          auto seg = std::prev(p.layout.upper_bound(a));
          uint64_t end = std::min(seg->second.first, e.vaddr + e.pages * kPageSize);
          LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), src, flat.get(), off, end - a, flatPath(vpid)));
          src += end - a;
          a = end;
          continue;
        }
        auto [it, fresh] = p.extra.try_emplace(a, p.extraSize);
        if (fresh) p.extraSize += kPageSize;
        LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), src, extra.get(), it->second, kPageSize, extraPath(vpid)));
        src += kPageSize;
        a += kPageSize;
      }
    }
  }
  return okStatus();
}

Result<AssembleStats> PageStore::assemble() {
  AssembleStats as;
  ::unlink((dir_ + "/parent").c_str());
  for (const auto& [vpid, pmPath] : pagemapsIn(dir_)) {
    LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(pmPath));
    auto pmr = parsePagemap(text);
    if (!pmr.ok()) return pmr.status().withContext(pmPath);
    Pagemap pm = std::move(*pmr);
    bool anyParent = false;
    uint64_t total = 0;
    for (const auto& e : pm.entries) {
      anyParent |= (e.flags & kPeParent) != 0;
      if (e.flags & (kPeParent | kPePresent)) total += e.pages;
    }
    as.pages += total;
    if (!anyParent) continue;  // sent complete (the process was not tracked)
    auto found = procs_.find(vpid);
    if (found == procs_.end()) return internalError("pid " + std::to_string(vpid) + " has pages in PARENT but none in the store");
    const Proc& p = found->second;
    const std::string pagesPath = dir_ + "/pages-" + std::to_string(pm.pagesId) + ".img";

    // Fast path: every page is in the layout and the layout holds nothing
    // else, so flat file order is CRIU's order.
    bool fast = total == p.layoutPages;
    for (const auto& e : pm.entries) {
      if (!fast) break;
      if (!(e.flags & (kPeParent | kPePresent))) continue;
      for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize && fast;) {
        if (flatOffset(p, a) == UINT64_MAX) fast = false;
        else a = std::min(std::prev(p.layout.upper_bound(a))->second.first, e.vaddr + e.pages * kPageSize);
      }
    }
    if (!fast) {
      uint64_t missing = 0, firstMissing = 0;
      for (const auto& e : pm.entries)
        for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize; a += kPageSize)
          if ((e.flags & (kPeParent | kPePresent)) && flatOffset(p, a) == UINT64_MAX && !missing++) firstMissing = a;
      LXMIG_LOG(kInfo, "pagestore") << "pid " << vpid << ": rebuilding pages (" << total << " pages, store layout "
                                    << p.layoutPages << ", " << missing << " outside it, first at 0x" << std::hex
                                    << firstMissing << std::dec << ")";
    }
    Status st;
    UniqueFd delta = openOrFail(pagesPath, O_RDONLY, st);
    UniqueFd flat = openOrFail(flatPath(vpid), fast ? O_WRONLY : O_RDONLY, st);
    UniqueFd extra;
    if (!fast && pathExists(extraPath(vpid))) extra = openOrFail(extraPath(vpid), O_RDONLY, st);
    LXMIG_RETURN_IF_ERROR(st);
    const std::string tmp = pagesPath + ".assembled";
    UniqueFd out;
    if (!fast) {
      out = openOrFail(tmp, O_WRONLY | O_CREAT | O_TRUNC, st);
      LXMIG_RETURN_IF_ERROR(st);
      ++as.rebuilt;
    }
    uint64_t deltaOff = 0, outOff = 0;
    for (const auto& e : pm.entries) {
      const uint64_t end = e.vaddr + e.pages * kPageSize;
      if (e.flags & kPePresent) {
        if (fast) {
          for (uint64_t a = e.vaddr; a < end;) {
            uint64_t segEnd = std::min(std::prev(p.layout.upper_bound(a))->second.first, end);
            LXMIG_RETURN_IF_ERROR(copyFileRange(delta.get(), deltaOff, flat.get(), flatOffset(p, a), segEnd - a, flatPath(vpid)));
            deltaOff += segEnd - a;
            a = segEnd;
          }
        } else {
          LXMIG_RETURN_IF_ERROR(copyFileRange(delta.get(), deltaOff, out.get(), outOff, end - e.vaddr, tmp));
          deltaOff += end - e.vaddr;
          outOff += end - e.vaddr;
          as.copiedBytes += end - e.vaddr;
        }
      } else if (e.flags & kPeParent) {
        as.fromStore += e.pages;
        if (fast) continue;  // already in place
        for (uint64_t a = e.vaddr; a < end;) {
          uint64_t off = flatOffset(p, a);
          if (off != UINT64_MAX) {
            uint64_t segEnd = std::min(std::prev(p.layout.upper_bound(a))->second.first, end);
            LXMIG_RETURN_IF_ERROR(copyFileRange(flat.get(), off, out.get(), outOff, segEnd - a, tmp));
            outOff += segEnd - a;
            as.copiedBytes += segEnd - a;
            a = segEnd;
            continue;
          }
          auto x = p.extra.find(a);
          if (x == p.extra.end() || !extra)
            return internalError("page " + std::to_string(a) + " of pid " + std::to_string(vpid) + " is not in the store");
          LXMIG_RETURN_IF_ERROR(copyFileRange(extra.get(), x->second, out.get(), outOff, kPageSize, tmp));
          outOff += kPageSize;
          as.copiedBytes += kPageSize;
          a += kPageSize;
        }
      }
    }
    const std::string& result = fast ? flatPath(vpid) : tmp;
    if (::rename(result.c_str(), pagesPath.c_str()) != 0) return Status::fromErrno("rename", result);
    ::unlink(flatPath(vpid).c_str());
    ::unlink(extraPath(vpid).c_str());
    for (auto& e : pm.entries)
      if (e.flags & kPeParent) e.flags = (e.flags & ~kPeParent) | kPePresent;
    LXMIG_RETURN_IF_ERROR(writeFileAtomic(pmPath, serializePagemap(pm), 0600));
  }
  (void)removeTree(dir_ + "/store");
  (void)removeTree(dir_ + "/rounds");
  return as;
}

}  // namespace lxmig::agent
