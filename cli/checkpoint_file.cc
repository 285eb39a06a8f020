#include "checkpoint_file.h"

#include <cstring>

namespace lxmig::cli {
namespace {

std::shared_ptr<XXH3_state_t> newHash() {
  std::shared_ptr<XXH3_state_t> h(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(h.get());
  return h;
}

void putLength(char* out, uint32_t n) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

uint32_t getLength(const char* in) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return n;
}

}  // namespace

CheckpointWriter::CheckpointWriter(WriteFn out) : out_(std::move(out)), hash_(newHash()) {}

Result<CheckpointWriter> CheckpointWriter::start(WriteFn out) {
  CheckpointWriter w(std::move(out));
  LXMIG_RETURN_IF_ERROR(w.out_(kCheckpointMagic, kCheckpointMagicBytes));
  XXH3_64bits_update(w.hash_.get(), kCheckpointMagic, kCheckpointMagicBytes);
  w.bytes_ = kCheckpointMagicBytes;
  return w;
}

Status CheckpointWriter::put(const v1::CheckpointRecord& r, bool hashed) {
  std::string body;
  if (!r.SerializeToString(&body)) return internalError("checkpoint: a record would not serialize");
  if (body.size() > kMaxCheckpointRecordBytes)
    return internalError("checkpoint: a record of " + std::to_string(body.size()) + " bytes is over the limit");
  char len[4];
  putLength(len, static_cast<uint32_t>(body.size()));
  LXMIG_RETURN_IF_ERROR(out_(len, sizeof len));
  LXMIG_RETURN_IF_ERROR(out_(body.data(), body.size()));
  if (hashed) {
    XXH3_64bits_update(hash_.get(), len, sizeof len);
    XXH3_64bits_update(hash_.get(), body.data(), body.size());
    ++records_;
  }
  bytes_ += sizeof len + body.size();
  return okStatus();
}

Status CheckpointWriter::add(const v1::CheckpointRecord& r) {
  if (r.has_end()) return invalidArgument("checkpoint: the end record is the writer's");
  return put(r, true);
}

Status CheckpointWriter::end(const std::string& node, int64_t takenMs) {
  v1::CheckpointRecord r;
  v1::CheckpointEnd* e = r.mutable_end();
  e->set_records(records_);
  e->set_bytes(bytes_);
  e->set_xxh3(XXH3_64bits_digest(hash_.get()));
  e->set_node(node);
  e->set_taken_ms(takenMs);
  return put(r, false);
}

CheckpointReader::CheckpointReader(ReadFn in) : in_(std::move(in)), hash_(newHash()) {}

Result<bool> CheckpointReader::readFully(char* data, size_t n) {
  size_t got = 0;
  while (got < n) {
    LXMIG_ASSIGN_OR_RETURN(size_t k, in_(data + got, n - got));
    if (k == 0)
      return got == 0 ? Result<bool>(false)
                      : invalidArgument("checkpoint cut short at byte " + std::to_string(bytes_ + got));
    got += k;
  }
  return true;
}

Result<CheckpointReader> CheckpointReader::start(ReadFn in) {
  CheckpointReader r(std::move(in));
  char magic[kCheckpointMagicBytes];
  LXMIG_ASSIGN_OR_RETURN(bool got, r.readFully(magic, sizeof magic));
  if (!got || std::memcmp(magic, kCheckpointMagic, sizeof magic) != 0)
    return invalidArgument("not an lxmig checkpoint (it does not start with " + std::string(kCheckpointMagic) + ")");
  XXH3_64bits_update(r.hash_.get(), magic, sizeof magic);
  r.bytes_ = sizeof magic;
  return r;
}

Result<bool> CheckpointReader::next(v1::CheckpointRecord* r) {
  if (ended_) return false;
  const std::string at = " at byte " + std::to_string(bytes_);
  char len[4];
  LXMIG_ASSIGN_OR_RETURN(bool got, readFully(len, sizeof len));
  if (!got) return invalidArgument("checkpoint cut short: no end record" + at);
  const uint32_t n = getLength(len);
  if (n > kMaxCheckpointRecordBytes)
    return invalidArgument("checkpoint damaged: a record of " + std::to_string(n) + " bytes" + at);
  std::string body(n, '\0');
  LXMIG_ASSIGN_OR_RETURN(got, readFully(body.data(), n));
  if (!got && n > 0) return invalidArgument("checkpoint cut short" + at);
  if (!r->ParseFromString(body)) return invalidArgument("checkpoint damaged: a record does not parse" + at);
  if (r->has_end()) {
    const v1::CheckpointEnd& e = r->end();
    if (e.records() != records_ || e.bytes() != bytes_ || e.xxh3() != XXH3_64bits_digest(hash_.get()))
      return invalidArgument("checkpoint damaged: its content does not match its end record (XXH3 or length)");
    ended_ = true;
  } else {
    XXH3_64bits_update(hash_.get(), len, sizeof len);
    XXH3_64bits_update(hash_.get(), body.data(), body.size());
    ++records_;
  }
  bytes_ += sizeof len + n;
  return true;
}

}  // namespace lxmig::cli
