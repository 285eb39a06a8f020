#include "lxmig/criu/page_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/log.h"
#include "lxmig/criu/image.h"

namespace lxmig::criu {

using tracking::kPageSize;
using tracking::PageSet;
using tracking::Range;
namespace {

std::string roundDirName(int k) {
  char b[32];
  std::snprintf(b, sizeof b, "rounds/%04d", k);
  return b;
}

// The pagemaps of a directory by key: "<pid>" for pagemap-<pid>.img (a
// process, pid inside the container), "shmem-<id>" for
// pagemap-shmem-<id>.img (a shared memory object, CRIU's shmid).
std::vector<std::pair<std::string, std::string>> pagemapsIn(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& n : listDir(dir).value_or({})) {
    // A name from the peer: a number out of range names nothing.
    if (auto shmid = imageNumber("pagemap-shmem-", n, UINT64_MAX))
      out.emplace_back("shmem-" + std::to_string(*shmid), dir + "/" + n);
    else if (auto pid = imageNumber("pagemap-", n, UINT32_MAX)) out.emplace_back(std::to_string(*pid), dir + "/" + n);
  }
  return out;
}

// "pid 12" or "shared memory 3456", for messages.
std::string describe(const std::string& key) {
  return startsWith(key, "shmem-") ? "shared memory " + key.substr(6) : "pid " + key;
}

UniqueFd openOrFail(const std::string& path, int flags, Status& st) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  if (!fd && st.ok()) st = Status::fromErrno("open", path);
  return fd;
}

// A stretch of a round's (or the delta's) pages file and where it goes in
// a shared memory object.
struct MirrorCopy {
  uint64_t src = 0, dst = 0, len = 0;
};

// Copies pages from `in` into the memfd `out` with pread and pwrite (the
// images' tmpfs and the memfd are two filesystems: copy_file_range says
// EXDEV). Pages new to `out` (`fresh`) are charged to the memory cgroup of
// the process whose mm allocates them: with `procs` >= 0 a child process
// that first joins the cgroup of that procs file writes those
// (PageStore::chargeMirrorsWith); it only makes system calls, as a child of
// a threaded process must. Pages `out` holds already (`held`) are
// overwritten here, without a child (their charge stays): a delta in the
// frozen window rarely needs one.
Status copyIntoMirror(int in, int out, const std::vector<MirrorCopy>& held, const std::vector<MirrorCopy>& fresh,
                      int procs, const std::string& what) {
  std::vector<char> buf(1 << 20);
  auto copyAll = [&](const std::vector<MirrorCopy>& todo) -> int {  // 0 or an errno
    for (const auto& op : todo)
      for (uint64_t done = 0; done < op.len;) {
        const ssize_t r =
            ::pread(in, buf.data(), std::min<uint64_t>(buf.size(), op.len - done), static_cast<off_t>(op.src + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? EIO : errno;
        for (ssize_t w = 0; w < r;) {
          const ssize_t k = ::pwrite(out, buf.data() + w, static_cast<size_t>(r - w),
                                     static_cast<off_t>(op.dst + done + static_cast<uint64_t>(w)));
          if (k < 0 && errno == EINTR) continue;
          if (k <= 0) return k == 0 ? EIO : errno;
          w += k;
        }
        done += static_cast<uint64_t>(r);
      }
    return 0;
  };
  if (const int e = copyAll(held)) return Status::fromErrno("copy into", what, e);
  if (fresh.empty()) return okStatus();
  if (procs < 0) {
    const int e = copyAll(fresh);
    return e ? Status::fromErrno("copy into", what, e) : okStatus();
  }
  // Exit codes: 0, an errno of the copy, or 128 + the errno of the join.
  const pid_t pid = ::fork();
  if (pid < 0) return Status::fromErrno("fork the writer of", what);
  if (pid == 0) {
    if (::write(procs, "0", 1) != 1) ::_exit(128 + (errno & 127));
    ::_exit(copyAll(fresh) & 127);
  }
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) return Status::fromErrno("wait for the writer of", what);
  if (!WIFEXITED(ws))
    return internalError("the writer of " + what + " died (signal " + std::to_string(WTERMSIG(ws)) + ")");
  const int code = WEXITSTATUS(ws);
  if (code >= 128) return Status::fromErrno("join the memory cgroup of", what, code - 128);
  return code ? Status::fromErrno("copy into", what, code) : okStatus();
}

}  // namespace

std::string PageStore::flatPath(const std::string& key) const { return dir_ + "/store/flat-" + key + ".img"; }
std::string PageStore::extraPath(const std::string& key) const { return dir_ + "/store/extra-" + key + ".img"; }

uint64_t PageStore::flatOffset(const Proc& p, uint64_t addr) {
  auto it = p.layout.upper_bound(addr);
  if (it == p.layout.begin()) return UINT64_MAX;
  --it;
  if (addr >= it->second.first) return UINT64_MAX;
  return it->second.second + (addr - it->first);
}

namespace {

// Records [start, end) of a layout at `off`, joined to the segment before it
// in address order when both continue each other in the file too. The
// range lies outside every segment.
void appendSegment(std::map<uint64_t, std::pair<uint64_t, uint64_t>>& layout, uint64_t start, uint64_t end,
                   uint64_t off) {
  auto next = layout.upper_bound(start);
  if (next != layout.begin()) {
    auto& [prevStart, prev] = *std::prev(next);
    if (prev.first == start && prev.second + (start - prevStart) == off) {
      prev.first = end;
      return;
    }
  }
  layout[start] = {end, off};
}

// The end of the run of pages from `a` (not in the layout) up to `limit`
// that the layout does not hold either.
uint64_t outsideLayoutEnd(const std::map<uint64_t, std::pair<uint64_t, uint64_t>>& layout, uint64_t a, uint64_t limit) {
  auto next = layout.upper_bound(a);
  return next == layout.end() ? limit : std::min(next->first, limit);
}

// Offsets in a pagemap are the target's own (assembleInPlace): a pagemap
// from the source, a round's or the dump's, has none.
Status noOffsets(const Pagemap& pm, const std::string& path) {
  for (const auto& e : pm.entries)
    if (e.offset) return invalidArgument(path + ": a pagemap entry names an offset (only the target writes those)");
  return okStatus();
}

}  // namespace

Status PageStore::applyRounds() {
  for (;;) {
    const std::string rd = dir_ + "/" + roundDirName(nextRound_);
    if (!pathExists(rd)) return okStatus();
    LXMIG_RETURN_IF_ERROR(applyRound(nextRound_));
    LXMIG_RETURN_IF_ERROR(removeTree(rd));
    ++nextRound_;
  }
}

Status PageStore::writeMirror(const std::string& key, Mirror& m, const Pagemap& pm, const std::string& pagesPath) {
  std::vector<MirrorCopy> held, fresh;
  PageSet written;
  uint64_t src = 0;
  for (const auto& e : pm.entries) {
    if (!(e.flags & kPePresent)) continue;
    for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize; a += kPageSize, src += kPageSize) {
      auto& to = m.held.contains(a) ? held : fresh;
      if (!to.empty() && to.back().src + to.back().len == src && to.back().dst + to.back().len == a)
        to.back().len += kPageSize;
      else to.push_back({src, a, kPageSize});
    }
    written.add(e.vaddr, e.vaddr + e.pages * kPageSize);
  }
  Status st;
  UniqueFd in = openOrFail(pagesPath, O_RDONLY, st);
  LXMIG_RETURN_IF_ERROR(st);
  LXMIG_RETURN_IF_ERROR(copyIntoMirror(in.get(), m.fd.get(), held, fresh, chargeTo_, "the memfd of " + describe(key)));
  for (const auto& r : written.ranges()) m.held.add(r);
  return okStatus();
}

std::vector<std::pair<uint64_t, int>> PageStore::mirrors() const {
  std::vector<std::pair<uint64_t, int>> out;
  for (const auto& [key, m] : mirrors_) {
    uint64_t shmid = 0;
    if (m.complete && parseUint64(key.substr(6), &shmid)) out.emplace_back(shmid, m.fd.get());
  }
  return out;
}

Status PageStore::applyRound(int k) {
  const std::string rd = dir_ + "/" + roundDirName(k);
  LXMIG_RETURN_IF_ERROR(makeDirs(dir_ + "/store", 0700));
  for (const auto& [key, pmPath] : pagemapsIn(rd)) {
    LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(pmPath));
    auto pm = parsePagemap(text);
    if (!pm.ok()) return pm.status().withContext(pmPath);
    LXMIG_RETURN_IF_ERROR(noOffsets(*pm, pmPath));
    const std::string pages = rd + "/pages-" + std::to_string(pm->pagesId) + ".img";
    auto found = procs_.find(key);
    const bool mirrorable = found == procs_.end() && !mirrors_.count(key) && pm->memfdName &&
                            startsWith(key, "shmem-") && mirrors_.size() < kMaxMirrors;
    if (mirrorable && !mirrorsOff_ && chargeTo_ < 0 && chargeOpener_) {
      auto procs = chargeOpener_();
      if (procs.ok()) {
        chargeTo_ = *procs;
      } else {
        LXMIG_LOG(kInfo, "pagestore") << "shared memory kept in the page store: " << procs.status().message();
        mirrorsOff_ = true;
      }
    }
    if (mirrorable && !mirrorsOff_) {
      // From its first round on, or never: a mirror holds every page.
      UniqueFd fd(::memfd_create(pm->memfdName->c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (fd) mirrors_[key].fd = std::move(fd);
      else
        LXMIG_LOG(kWarn, "pagestore") << describe(key) << ": kept in the page store ("
                                      << Status::fromErrno("memfd_create", "its name").message() << ")";
    }
    if (auto m = mirrors_.find(key); m != mirrors_.end()) {
      // The only copy the store keeps of this object.
      LXMIG_RETURN_IF_ERROR(writeMirror(key, m->second, *pm, pages).withContext(describe(key)));
      continue;
    }
    if (found == procs_.end()) {
      // First pages of this process (or object): its flat store, as they are.
      Proc p;
      for (const auto& e : pm->entries) {
        if (!(e.flags & kPePresent)) continue;
        p.layout[e.vaddr] = {e.vaddr + e.pages * kPageSize, p.layoutPages * kPageSize};
        p.layoutPages += e.pages;
      }
      if (::rename(pages.c_str(), flatPath(key).c_str()) != 0) return Status::fromErrno("rename", pages);
      procs_[key] = std::move(p);
      continue;
    }
    Proc& p = found->second;
    Status st;
    UniqueFd in = openOrFail(pages, O_RDONLY, st);
    UniqueFd flat = openOrFail(flatPath(key), O_WRONLY, st);
    UniqueFd extra = openOrFail(extraPath(key), O_WRONLY | O_CREAT, st);
    LXMIG_RETURN_IF_ERROR(st);
    uint64_t src = 0;
    for (const auto& e : pm->entries) {
      if (!(e.flags & kPePresent)) continue;
      for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize;) {
        uint64_t off = flatOffset(p, a);
        if (off != UINT64_MAX) {
          auto seg = std::prev(p.layout.upper_bound(a));
          uint64_t end = std::min(seg->second.first, e.vaddr + e.pages * kPageSize);
          LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), src, flat.get(), off, end - a, flatPath(key)));
          src += end - a;
          a = end;
          continue;
        }
        if (offsets_) {
          // The flat file needs no address order when the entries name
          // their offsets: the run of pages outside the layout is appended
          // to it, and the layout learns where.
          const uint64_t runEnd = outsideLayoutEnd(p.layout, a, e.vaddr + e.pages * kPageSize);
          const uint64_t at = p.layoutPages * kPageSize;
          LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), src, flat.get(), at, runEnd - a, flatPath(key)));
          appendSegment(p.layout, a, runEnd, at);
          p.layoutPages += (runEnd - a) / kPageSize;
          src += runEnd - a;
          a = runEnd;
          continue;
        }
        auto [it, fresh] = p.extra.try_emplace(a, p.extraSize);
        if (fresh) p.extraSize += kPageSize;
        LXMIG_RETURN_IF_ERROR(copyFileRange(in.get(), src, extra.get(), it->second, kPageSize, extraPath(key)));
        src += kPageSize;
        a += kPageSize;
      }
    }
  }
  return okStatus();
}

namespace {

// Makes a hole of every part of a mirror that no page of `pm` covers: the
// object has none there (a fresh memfd reads zeros).
Status punchOutside(int fd, const Pagemap& pm) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::fromErrno("stat", "a shared memory mirror");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t at = 0;
  auto punch = [&](uint64_t end) -> Status {
    end = std::min(end, size);
    if (end > at && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(at),
                                static_cast<off_t>(end - at)) != 0)
      return Status::fromErrno("punch a hole into", "a shared memory mirror");
    return okStatus();
  };
  for (const auto& e : pm.entries) {
    if (!(e.flags & (kPeParent | kPePresent))) continue;
    LXMIG_RETURN_IF_ERROR(punch(e.vaddr));
    at = std::max(at, e.vaddr + e.pages * kPageSize);
  }
  return punch(size);
}

}  // namespace

// Where each byte of a process's assembled pages file comes from.
struct PageStore::Piece {
  enum From { kFlat, kExtra, kDelta } from;
  uint64_t src = 0;  // offset in the source file
  uint64_t dst = 0;  // offset in the assembled file
  uint64_t len = 0;
};

namespace {

void addPiece(std::vector<PageStore::Piece>& v, PageStore::Piece::From from, uint64_t src, uint64_t dst, uint64_t len) {
  if (!v.empty() && v.back().from == from && v.back().src + v.back().len == src && v.back().dst + v.back().len == dst)
    v.back().len += len;
  else v.push_back({from, src, dst, len});
}

// Moves [src, src+len) to [dst, dst+len) of one file; the two may overlap
// (a move to the right copies from the end, so nothing is read after it was
// overwritten).
Status moveWithin(int fd, uint64_t src, uint64_t dst, uint64_t len, std::vector<char>& buf, const std::string& path) {
  const bool right = dst > src;
  for (uint64_t done = 0; done < len;) {
    const uint64_t n = std::min<uint64_t>(buf.size(), len - done);
    const uint64_t at = right ? len - done - n : done;
    LXMIG_RETURN_IF_ERROR(preadAll(fd, buf.data(), n, src + at, path));
    LXMIG_RETURN_IF_ERROR(pwriteAll(fd, buf.data(), n, dst + at, path));
    done += n;
  }
  return okStatus();
}

}  // namespace

// The flat file becomes the pages file in place. Pieces of it that keep
// their offset stay where they are (all of them, usually); pieces that move
// are moved inside the file, never copied to a new one: pages that appeared
// or vanished since round 0 shift what follows them, and a copy would put
// the whole process's memory into fresh pages in the frozen window (4.3 s
// for 1 GiB on the test VM, cold memory; a move rewrites warm pages).
//
// Destinations are in address order like the sources, so a piece moving
// right can only land on the sources of pieces after it, and one moving
// left on those before it: right-movers go last first, left-movers first
// first, and then the pages from the delta and the extra file are written.
Status PageStore::relayout(int flat, const std::string& flatName, const std::vector<Piece>& pieces, int extra,
                           int delta, const std::string& deltaName, AssembleStats& as) {
  std::vector<char> buf(1 << 20);
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
    if (it->from != Piece::kFlat || it->dst <= it->src) continue;
    LXMIG_RETURN_IF_ERROR(moveWithin(flat, it->src, it->dst, it->len, buf, flatName));
    as.movedBytes += it->len;
  }
  for (const auto& pc : pieces) {
    if (pc.from != Piece::kFlat || pc.dst >= pc.src) continue;
    LXMIG_RETURN_IF_ERROR(moveWithin(flat, pc.src, pc.dst, pc.len, buf, flatName));
    as.movedBytes += pc.len;
  }
  for (const auto& pc : pieces) {
    if (pc.from == Piece::kFlat) continue;
    const bool fromDelta = pc.from == Piece::kDelta;
    LXMIG_RETURN_IF_ERROR(copyFileRange(fromDelta ? delta : extra, pc.src, flat, pc.dst, pc.len, flatName)
                              .withContext(fromDelta ? deltaName : "extra pages"));
    if (!fromDelta) as.copiedBytes += pc.len;
  }
  const uint64_t size = pieces.empty() ? 0 : pieces.back().dst + pieces.back().len;
  if (::ftruncate(flat, static_cast<off_t>(size)) != 0) return Status::fromErrno("truncate", flatName);
  return okStatus();
}

namespace {

// Appends [start, end) at `off` to a layout, merged with the segment before
// it when both continue each other.
void addSegment(std::map<uint64_t, std::pair<uint64_t, uint64_t>>& layout, uint64_t start, uint64_t end, uint64_t off) {
  if (!layout.empty()) {
    auto& [lastStart, last] = *layout.rbegin();
    if (last.first == start && last.second + (start - lastStart) == off) {
      last.first = end;
      return;
    }
  }
  layout[start] = {end, off};
}

}  // namespace

Result<PrelayoutStats> PageStore::prelayout(const std::map<uint32_t, PageSet>& predicted) {
  PrelayoutStats ps;
  if (offsets_) return ps;  // assemble() moves nothing
  for (const auto& [vpid, pages] : predicted) {
    const std::string key = std::to_string(vpid);
    auto found = procs_.find(key);
    if (found == procs_.end() || pages.empty()) continue;
    Proc& p = found->second;
    Proc next;
    std::vector<Piece> pieces;
    uint64_t out = 0;
    for (const Range& r : pages.ranges()) {
      for (uint64_t a = r.start; a < r.end;) {
        if (uint64_t off = flatOffset(p, a); off != UINT64_MAX) {
          const uint64_t segEnd = std::min(std::prev(p.layout.upper_bound(a))->second.first, r.end);
          addPiece(pieces, Piece::kFlat, off, out, segEnd - a);
          addSegment(next.layout, a, segEnd, out);
          out += segEnd - a;
          a = segEnd;
          continue;
        }
        if (auto x = p.extra.find(a); x != p.extra.end()) {
          addPiece(pieces, Piece::kExtra, x->second, out, kPageSize);
          addSegment(next.layout, a, a + kPageSize, out);
        }  // else: a hole the delta fills in
        out += kPageSize;
        a += kPageSize;
      }
    }
    next.layoutPages = out / kPageSize;
    // Pieces keep address order on both sides (a held page the prediction
    // does not name is simply not a piece), as relayout() requires.
    Status st;
    UniqueFd flat = openOrFail(flatPath(key), O_RDWR, st);
    UniqueFd extra;
    if (!p.extra.empty()) extra = openOrFail(extraPath(key), O_RDONLY, st);
    if (st.ok()) {
      AssembleStats as;
      st = relayout(flat.get(), flatPath(key), pieces, extra.get(), -1, "", as);
      ps.movedBytes += as.movedBytes;
      ps.copiedBytes += as.copiedBytes;
    }
    if (!st.ok()) {
      broken_ = st.withContext("lay out the page store of pid " + std::to_string(vpid));
      return broken_;
    }
    // The layout may end in holes: the file is as long as the predicted
    // pages file, so assemble() sees every piece in place.
    if (::ftruncate(flat.get(), static_cast<off_t>(out)) != 0) {
      broken_ = Status::fromErrno("truncate", flatPath(key));
      return broken_;
    }
    ::unlink(extraPath(key).c_str());
    p = std::move(next);
    ++ps.procs;
  }
  return ps;
}

Result<AssembleStats> PageStore::assemble() {
  LXMIG_RETURN_IF_ERROR(broken_);
  AssembleStats as;
  ::unlink((dir_ + "/parent").c_str());
  for (const auto& [key, pmPath] : pagemapsIn(dir_)) {
    LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(pmPath));
    auto pmr = parsePagemap(text);
    if (!pmr.ok()) return pmr.status().withContext(pmPath);
    Pagemap pm = std::move(*pmr);
    LXMIG_RETURN_IF_ERROR(noOffsets(pm, pmPath));
    const uint64_t total = pagesWith(pm, kPeParent | kPePresent);
    as.pages += total;
    if (pagesWith(pm, kPeParent) == 0) {  // sent complete (the process was not tracked)
      mirrors_.erase(key);
      continue;
    }
    const std::string pagesPath = dir_ + "/pages-" + std::to_string(pm.pagesId) + ".img";
    if (auto m = mirrors_.find(key); m != mirrors_.end()) {
      LXMIG_RETURN_IF_ERROR(completeMirror(key, m->second, pm, pagesPath));
      as.fromStore += pagesWith(pm, kPeParent);
      continue;  // the images stay as sent: only the mirror restores it
    }
    auto found = procs_.find(key);
    if (found == procs_.end()) return internalError(describe(key) + " has pages in PARENT but none in the store");
    const Proc& p = found->second;
    if (offsets_) {
      LXMIG_RETURN_IF_ERROR(assembleInPlace(key, p, pm, pagesPath, as));
      as.joinedEntries += joinAdjacentEntries(pm);
      LXMIG_RETURN_IF_ERROR(writeFileAtomic(pmPath, serializePagemap(pm), 0600));
      continue;
    }

    // Where every page of CRIU's pages file comes from, in its order.
    std::vector<Piece> pieces;
    uint64_t deltaOff = 0, out = 0;
    for (const auto& e : pm.entries) {
      const uint64_t end = e.vaddr + e.pages * kPageSize;
      if (e.flags & kPePresent) {
        addPiece(pieces, Piece::kDelta, deltaOff, out, end - e.vaddr);
        deltaOff += end - e.vaddr;
        out += end - e.vaddr;
        continue;
      }
      if (!(e.flags & kPeParent)) continue;
      as.fromStore += e.pages;
      for (uint64_t a = e.vaddr; a < end;) {
        if (uint64_t off = flatOffset(p, a); off != UINT64_MAX) {
          const uint64_t segEnd = std::min(std::prev(p.layout.upper_bound(a))->second.first, end);
          addPiece(pieces, Piece::kFlat, off, out, segEnd - a);
          out += segEnd - a;
          a = segEnd;
          continue;
        }
        auto x = p.extra.find(a);
        if (x == p.extra.end())
          return internalError("page " + std::to_string(a) + " of " + describe(key) + " is not in the store");
        addPiece(pieces, Piece::kExtra, x->second, out, kPageSize);
        out += kPageSize;
        a += kPageSize;
      }
    }
    bool moved = false;
    for (const auto& pc : pieces) moved |= pc.from == Piece::kFlat && pc.src != pc.dst;
    if (moved || out != p.layoutPages * kPageSize) {
      ++as.rebuilt;
      // For the log only: pages of the layout kept (taken from it, or sent
      // again at a layout address), so how many are gone and how many new.
      uint64_t kept = 0;
      for (const auto& pc : pieces)
        if (pc.from == Piece::kFlat) kept += pc.len / kPageSize;
      for (const auto& e : pm.entries)
        if (e.flags & kPePresent)
          for (uint64_t a = e.vaddr; a < e.vaddr + e.pages * kPageSize; a += kPageSize)
            if (flatOffset(p, a) != UINT64_MAX) ++kept;
      LXMIG_LOG(kInfo, "pagestore") << describe(key) << ": pages file laid out anew in place (" << total
                                    << " pages; layout " << p.layoutPages << ", " << p.layoutPages - kept
                                    << " of them gone, " << total - kept << " pages new)";
    }

    Status st;
    UniqueFd delta = openOrFail(pagesPath, O_RDONLY, st);
    UniqueFd flat = openOrFail(flatPath(key), O_RDWR, st);
    UniqueFd extra;
    if (pathExists(extraPath(key))) extra = openOrFail(extraPath(key), O_RDONLY, st);
    LXMIG_RETURN_IF_ERROR(st);
    LXMIG_RETURN_IF_ERROR(relayout(flat.get(), flatPath(key), pieces, extra.get(), delta.get(), pagesPath, as));
    if (::rename(flatPath(key).c_str(), pagesPath.c_str()) != 0) return Status::fromErrno("rename", flatPath(key));
    ::unlink(extraPath(key).c_str());
    for (auto& e : pm.entries)
      if (e.flags & kPeParent) e.flags = (e.flags & ~kPeParent) | kPePresent;
    as.joinedEntries += joinAdjacentEntries(pm);
    LXMIG_RETURN_IF_ERROR(writeFileAtomic(pmPath, serializePagemap(pm), 0600));
  }
  (void)removeTree(dir_ + "/store");
  (void)removeTree(dir_ + "/rounds");
  return as;
}

Status PageStore::assembleInPlace(const std::string& key, const Proc& p, Pagemap& pm, const std::string& pagesPath,
                                  AssembleStats& as) {
  Status st;
  UniqueFd flat = openOrFail(flatPath(key), O_RDWR, st);
  UniqueFd delta = openOrFail(pagesPath, O_RDONLY, st);
  LXMIG_RETURN_IF_ERROR(st);
  struct stat fs = {};
  struct stat ds = {};
  if (::fstat(flat.get(), &fs) != 0) return Status::fromErrno("stat", flatPath(key));
  if (::fstat(delta.get(), &ds) != 0) return Status::fromErrno("stat", pagesPath);
  if (static_cast<uint64_t>(ds.st_size) != pagesWith(pm, kPePresent) * kPageSize)
    return invalidArgument(pagesPath + " holds " + std::to_string(ds.st_size) + " bytes, its pagemap names " +
                           std::to_string(pagesWith(pm, kPePresent)) + " pages");
  // A delta page the layout places is written over its stale copy there
  // (its entry then continues its neighbours' in the file, and joins
  // them); the others go after the file's end. Held pages are all in the
  // layout: in this mode the rounds append what it lacked (applyRound).
  uint64_t end = (static_cast<uint64_t>(fs.st_size) + kPageSize - 1) / kPageSize * kPageSize, deltaOff = 0;
  Pagemap out;
  out.pagesId = pm.pagesId;
  for (const auto& e : pm.entries) {
    const uint64_t eEnd = e.vaddr + e.pages * kPageSize;
    if (!(e.flags & (kPePresent | kPeParent))) {  // no pages in any file
      out.entries.push_back(e);
      continue;
    }
    const bool fromDelta = e.flags & kPePresent;
    if (!fromDelta) as.fromStore += e.pages;
    const uint32_t flags = (e.flags & ~kPeParent) | kPePresent;
    for (uint64_t a = e.vaddr; a < eEnd;) {
      uint64_t runEnd = a + kPageSize, at = end;
      if (uint64_t off = flatOffset(p, a); off != UINT64_MAX) {
        runEnd = std::min(std::prev(p.layout.upper_bound(a))->second.first, eEnd);
        at = off;
        if (fromDelta)
          LXMIG_RETURN_IF_ERROR(
              copyFileRange(delta.get(), deltaOff + (a - e.vaddr), flat.get(), at, runEnd - a, flatPath(key)));
      } else if (fromDelta) {
        runEnd = outsideLayoutEnd(p.layout, a, eEnd);
        LXMIG_RETURN_IF_ERROR(
            copyFileRange(delta.get(), deltaOff + (a - e.vaddr), flat.get(), at, runEnd - a, flatPath(key)));
        end += runEnd - a;
      } else {
        return internalError("page " + std::to_string(a) + " of " + describe(key) + " is not in the store");
      }
      out.entries.push_back({a, (runEnd - a) / kPageSize, flags, at});
      a = runEnd;
    }
    if (fromDelta) deltaOff += e.pages * kPageSize;
  }
  if (::rename(flatPath(key).c_str(), pagesPath.c_str()) != 0) return Status::fromErrno("rename", flatPath(key));
  pm = std::move(out);
  return okStatus();
}

Status PageStore::completeMirror(const std::string& key, Mirror& m, const Pagemap& pm, const std::string& pagesPath) {
  for (const auto& e : pm.entries) {
    if (!(e.flags & kPeParent)) continue;
    uint64_t covered = 0;
    m.held.forEachOverlap(e.vaddr, e.vaddr + e.pages * kPageSize, [&](uint64_t a, uint64_t b) { covered += b - a; });
    if (covered != e.pages * kPageSize)
      return internalError(describe(key) + " has pages in PARENT at offset " + std::to_string(e.vaddr) +
                           " that its memfd lacks");
  }
  const int64_t t0 = monotonicNs();
  LXMIG_RETURN_IF_ERROR(writeMirror(key, m, pm, pagesPath).withContext(describe(key) + ": the delta"));
  const int64_t t1 = monotonicNs();
  LXMIG_RETURN_IF_ERROR(punchOutside(m.fd.get(), pm).withContext(describe(key)));
  m.complete = true;
  LXMIG_LOG(kInfo, "pagestore") << describe(key) << ": its memfd brought to the dump (" << pagesWith(pm, kPePresent)
                                << " pages written in " << (t1 - t0) / 1000 << " us, holes made in "
                                << (monotonicNs() - t1) / 1000 << " us)";
  return okStatus();
}

uint64_t PageStore::heldPages() const {
  uint64_t n = 0;
  for (const auto& [key, p] : procs_) n += p.layoutPages + p.extra.size();
  for (const auto& [key, m] : mirrors_) n += m.held.bytes() / kPageSize;
  return n;
}

}  // namespace lxmig::criu
