// A checkpoint file (cli/checkpoint_file.h), as an operator may be handed
// one: whatever the bytes, reading ends with one line of error or after an
// end record whose counts and XXH3 match; nothing is returned after it,
// and no record is longer than the bound. What the reader accepted,
// written again, reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoint_file.h"
#include "fuzz_check.h"

using namespace lxmig;
using namespace lxmig::cli;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  size_t at = 0;
  ReadFn read = [&](char* data, size_t n) -> Result<size_t> {
    // Short reads too, as a pipe gives them.
    size_t k = std::min({n, size - at, size_t{1} + (at % 7) * 4096});
    std::memcpy(data, in + at, k);
    at += k;
    return k;
  };
  auto r = CheckpointReader::start(read);
  if (!r.ok()) {
    LXMIG_FUZZ_CHECK(r.status().message().find('\n') == std::string::npos);
    return 0;
  }
  std::vector<v1::CheckpointRecord> seen;
  bool ended = false;
  for (;;) {
    v1::CheckpointRecord rec;
    auto more = r->next(&rec);
    if (!more.ok()) {
      LXMIG_FUZZ_CHECK(more.status().message().find('\n') == std::string::npos);
      LXMIG_FUZZ_CHECK(!ended);
      return 0;
    }
    if (!*more) break;
    LXMIG_FUZZ_CHECK(!ended);
    LXMIG_FUZZ_CHECK(rec.ByteSizeLong() <= kMaxCheckpointRecordBytes);
    if (rec.has_end()) ended = true;
    else seen.push_back(rec);
  }
  LXMIG_FUZZ_CHECK(ended);
  std::string copy;
  auto w = CheckpointWriter::start([&](const char* d, size_t n) {
    copy.append(d, n);
    return okStatus();
  });
  LXMIG_FUZZ_CHECK(w.ok());
  for (const auto& rec : seen) LXMIG_FUZZ_CHECK(w->add(rec).ok());
  LXMIG_FUZZ_CHECK(w->end("n1", 1).ok());
  size_t pos = 0;
  auto again = CheckpointReader::start([&](char* d, size_t n) -> Result<size_t> {
    size_t k = std::min(n, copy.size() - pos);
    std::memcpy(d, copy.data() + pos, k);
    pos += k;
    return k;
  });
  LXMIG_FUZZ_CHECK(again.ok());
  size_t i = 0;
  v1::CheckpointRecord rec;
  while (true) {
    auto more = again->next(&rec);
    LXMIG_FUZZ_CHECK(more.ok());
    if (!*more || rec.has_end()) break;
    LXMIG_FUZZ_CHECK(i < seen.size() && rec.SerializeAsString() == seen[i].SerializeAsString());
    ++i;
  }
  LXMIG_FUZZ_CHECK(i == seen.size());
  return 0;
}
