// A set of page-aligned address ranges [start, end), kept merged and
// sorted. The pre-copy loop keeps one per process for "the target holds the
// current content of these pages"; trackers report written and watched
// memory as lists of ranges.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace lxmig::tracking {

constexpr uint64_t kPageSize = 4096;

struct Range {
  uint64_t start = 0;
  uint64_t end = 0;  // exclusive
  uint64_t pages() const { return (end - start) / kPageSize; }
  bool operator==(const Range&) const = default;
};

class PageSet {
 public:
  void add(uint64_t start, uint64_t end) {
    if (start >= end) return;
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= start) {
        start = prev->first;
        if (prev->second > end) end = prev->second;
        it = ranges_.erase(prev);
      }
    }
    while (it != ranges_.end() && it->first <= end) {
      if (it->second > end) end = it->second;
      it = ranges_.erase(it);
    }
    ranges_.emplace(start, end);
  }
  void add(const Range& r) { add(r.start, r.end); }

  void remove(uint64_t start, uint64_t end) {
    if (start >= end) return;
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) --it;
    while (it != ranges_.end() && it->first < end) {
      uint64_t s = it->first, e = it->second;
      if (e <= start) {
        ++it;
        continue;
      }
      it = ranges_.erase(it);
      if (s < start) ranges_.emplace(s, start);
      if (e > end) {
        ranges_.emplace(end, e);
        break;
      }
    }
  }
  void remove(const Range& r) { remove(r.start, r.end); }

  // Keeps only what also lies in `keep`.
  void intersect(const PageSet& keep) {
    PageSet out;
    for (const auto& [s, e] : ranges_) keep.forEachOverlap(s, e, [&](uint64_t a, uint64_t b) { out.add(a, b); });
    ranges_.swap(out.ranges_);
  }

  bool contains(uint64_t addr) const {
    auto it = ranges_.upper_bound(addr);
    if (it == ranges_.begin()) return false;
    --it;
    return addr < it->second;
  }

  // Calls fn(a, b) for every maximal piece of [start, end) inside the set.
  template <typename Fn>
  void forEachOverlap(uint64_t start, uint64_t end, Fn&& fn) const {
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < end; ++it) {
      uint64_t a = it->first > start ? it->first : start;
      uint64_t b = it->second < end ? it->second : end;
      if (a < b) fn(a, b);
    }
  }

  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& [s, e] : ranges_) n += e - s;
    return n;
  }
  bool empty() const { return ranges_.empty(); }
  void clear() { ranges_.clear(); }
  std::vector<Range> ranges() const {
    std::vector<Range> v;
    v.reserve(ranges_.size());
    for (const auto& [s, e] : ranges_) v.push_back({s, e});
    return v;
  }
  const std::map<uint64_t, uint64_t>& raw() const { return ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // start -> end
};

}  // namespace lxmig::tracking
