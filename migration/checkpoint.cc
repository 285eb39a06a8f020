#include "lxmig/migration/checkpoint.h"

#include <xxhash.h>

#include <mutex>
#include <optional>

#include "lxmig/base/grammar.h"
#include "lxmig/migration/source.h"
#include "lxmig/net/firewall.h"

namespace lxmig::migration {
namespace {

// How long the caller may take to make its file durable once every record
// was sent (fsync of a large file on a slow disk).
constexpr int kSavedTimeoutMs = 300 * 1000;

// A bulk stream written as records: each chunk with the XXH3 of its data
// (as the Transfer RPC sends it), the stream closed by `stream_end`.
class RecordWriter final : public transport::ChunkWriter {
 public:
  explicit RecordWriter(RecordSink& sink) : sink_(sink) {}
  bool write(v1::TransferChunk& c) override {
    if (broken_) return false;
    if (!c.has_meta()) c.set_xxh64(XXH3_64bits(c.data().data(), c.data().size()));
    bytes_ += c.data().size();
    files_ += c.has_meta() ? 1 : 0;
    v1::CheckpointRecord r;
    *r.mutable_chunk() = std::move(c);
    if (!sink_.write(r)) broken_ = true;
    return !broken_;
  }
  Result<v1::TransferReply> finish() override {
    v1::CheckpointRecord r;
    r.set_stream_end(true);
    if (broken_ || !sink_.write(r)) return unavailable("the checkpoint's caller went away (its file is incomplete)");
    v1::TransferReply rep;
    rep.set_bytes(bytes_);
    rep.set_files(files_);
    return rep;
  }
  void cancel() override {
    broken_ = true;
    sink_.breakOff();
  }
  const char* kind() const override { return "checkpoint file"; }

 private:
  RecordSink& sink_;
  std::atomic<bool> broken_{false};
  uint64_t bytes_ = 0;
  uint32_t files_ = 0;
};

// The file as a migration's target. Its RESTORE is the commit point: the
// network state is the last record, then the caller saves the file. Its
// ABORT is always confirmed: nothing runs from a file.
class FilePeer final : public Peer {
 public:
  explicit FilePeer(RecordSink& sink) : sink_(sink) {}
  const std::string& name() const override { return name_; }
  Result<v1::PrepareReply> prepare(const v1::PrepareRequest& req) override {
    v1::CheckpointRecord r;
    *r.mutable_prepare() = req;
    if (!sink_.write(r)) return unavailable("the checkpoint's caller went away");
    return v1::PrepareReply{};  // no data link: the records go on the caller's stream
  }
  Result<std::unique_ptr<transport::ChunkWriter>> openDataLink(uint16_t) override {
    return unimplemented("a checkpoint file has no data link");
  }
  std::unique_ptr<transport::ChunkWriter> openRpcStream() override { return std::make_unique<RecordWriter>(sink_); }
  Status prelayout(const v1::PrelayoutRequest&) override { return okStatus(); }
  // Recorded: the import asks its target for the same room at the same point.
  Status reserve(const v1::ReserveRequest& req) override {
    v1::CheckpointRecord r;
    *r.mutable_reserve() = req;
    if (!sink_.write(r)) return unavailable("the checkpoint's caller went away");
    return okStatus();
  }
  Result<v1::RestoreReply> restore(const v1::RestoreRequest& req) override {
    v1::CheckpointRecord r;
    *r.mutable_restore() = req;
    if (!sink_.write(r)) return unavailable("the checkpoint's caller went away before the file was complete");
    LXMIG_RETURN_IF_ERROR(sink_.awaitSaved(kSavedTimeoutMs));
    return v1::RestoreReply{};
  }
  Status commit(const std::string&) override { return okStatus(); }
  Status abort(const std::string&, const std::string&, int, bool) override { return okStatus(); }

 private:
  RecordSink& sink_;
  const std::string name_ = kCheckpointPeer;
};

class FilePeers final : public Peers {
 public:
  explicit FilePeers(RecordSink& sink) : sink_(sink) {}
  Result<std::unique_ptr<Peer>> connect(const std::string&) override {
    return std::unique_ptr<Peer>(std::make_unique<FilePeer>(sink_));
  }
  std::vector<std::string> names() override { return {}; }
  Result<std::vector<v1::ContainerInfo>> containers(const std::string&, int) override {
    return std::vector<v1::ContainerInfo>{};
  }

 private:
  RecordSink& sink_;
};

bool sameAddress(const v1::ContainerSpec& s, const std::string& ip,
                 const google::protobuf::RepeatedPtrField<std::string>& extra) {
  auto holds = [&](const std::string& a) {
    if (a.empty()) return false;
    if (a == ip) return true;
    for (const auto& e : extra)
      if (a == e) return true;
    return false;
  };
  if (holds(s.ip())) return true;
  for (const auto& e : s.extra_ips())
    if (holds(e)) return true;
  return false;
}

// Nothing of that name or address runs anywhere: a restore beside the
// container it was taken from (--leave-running) would give the cluster two
// copies of one address.
Status checkUnused(ContainerHost& host, Peers& peers, const v1::ContainerSpec& spec) {
  const std::string& self = host.nodeName();
  if (host.defined(spec.name())) return alreadyExists("a container `" + spec.name() + "` exists on " + self);
  for (const auto& c : host.containers()) {
    auto s = host.spec(c);
    if (s.ok() && sameAddress(spec, s->ip, {}))
      return failedPrecondition("address " + spec.ip() + " of the checkpoint is used by `" + c + "` on " + self +
                                " (remove it first, or checkpoint without --leave-running)");
    if (s.ok())
      for (const auto& e : s->extraIps)
        if (sameAddress(spec, e, {}))
          return failedPrecondition("address " + e + " of the checkpoint is used by `" + c + "` on " + self);
  }
  for (const auto& node : peers.names()) {
    auto list = peers.containers(node, 10);
    if (!list.ok())
      return failedPrecondition("node " + node + " did not answer (" + list.status().message() +
                                "): whether the checkpoint's name and address are free there is unknown");
    for (const auto& c : *list) {
      if (c.name() == spec.name())
        return alreadyExists("a container `" + spec.name() + "` runs on " + node + " (restore it with --name)");
      if (sameAddress(spec, c.ip(), c.extra_ips()))
        return failedPrecondition("address " + spec.ip() + " of the checkpoint is used by `" + c.name() + "` on " +
                                  node + " (remove it first, or checkpoint without --leave-running)");
    }
  }
  return okStatus();
}

Status outOfPlace(const v1::CheckpointRecord& r, const char* where) {
  return invalidArgument("not a valid checkpoint: record " + std::to_string(r.record_case()) + " " + where);
}

}  // namespace

std::unique_ptr<Peers> checkpointPeers(RecordSink& sink) { return std::make_unique<FilePeers>(sink); }

Result<Imported> importCheckpoint(Target& target, ContainerHost& host, Peers& peers, const std::string& name,
                                  const RecordSource& next) {
  v1::CheckpointRecord r;
  LXMIG_ASSIGN_OR_RETURN(bool first, next(r));
  if (!first || !r.has_prepare()) return invalidArgument("not a checkpoint: it does not start with its container");
  v1::PrepareRequest pr = std::move(*r.mutable_prepare());
  // A checkpoint's images carry the container's network namespace, /dev
  // and /dev/shm (nothing was prepared when it was taken): none is made
  // for its restore.
  pr.clear_netns();
  pr.clear_dev_shm_standard();
  pr.clear_dev_boot_id();
  Imported out;
  out.checkpointId = checkMigrationId(pr.migration_id()).ok() ? pr.migration_id() : "?";
  out.takenOn = checkNodeName(pr.source()).ok() ? pr.source() : "?";
  if (!name.empty()) {
    LXMIG_RETURN_IF_ERROR(checkContainerName(name));
    pr.mutable_spec()->set_name(name);
  }
  LXMIG_RETURN_IF_ERROR(checkContainerName(pr.spec().name()));
  out.container = pr.spec().name();
  LXMIG_RETURN_IF_ERROR(checkUnused(host, peers, pr.spec()));

  const std::string id = newMigrationId();
  pr.set_migration_id(id);
  pr.set_source(kCheckpointPeer);
  pr.clear_source_boot_id();  // whatever held the container's FIFOs then is not holding them now
  LXMIG_RETURN_IF_ERROR(target.prepare(kCheckpointPeer, pr));
  out.migrationId = id;
  auto fail = [&](const Status& st) {
    (void)target.abort(kCheckpointPeer, id, st.message());
    return st;
  };

  // The bulk streams, each into the Target as it came from the source.
  std::optional<v1::RestoreRequest> restore;
  while (!restore) {
    auto more = next(r);
    if (!more.ok()) return fail(more.status());
    if (!*more) return fail(invalidArgument("the checkpoint ends before its network state: cut short?"));
    if (r.record_case() == v1::CheckpointRecord::kRestore) {
      restore = std::move(*r.mutable_restore());
      break;
    }
    if (r.record_case() == v1::CheckpointRecord::kStreamEnd) continue;  // a stream without chunks
    if (r.record_case() == v1::CheckpointRecord::kReserve) {
      r.mutable_reserve()->set_migration_id(id);
      if (Status st = target.reserve(kCheckpointPeer, r.reserve()); !st.ok()) return fail(st);
      continue;
    }
    if (!r.has_chunk()) return fail(outOfPlace(r, "between streams"));
    bool pending = true, ended = false;
    auto chunks = [&](v1::TransferChunk& c) -> Result<bool> {
      if (pending) {
        pending = false;
      } else {
        LXMIG_ASSIGN_OR_RETURN(bool got, next(r));
        if (!got) return invalidArgument("the checkpoint ends inside a stream: cut short?");
        if (r.record_case() == v1::CheckpointRecord::kStreamEnd) {
          ended = true;
          return false;
        }
        if (!r.has_chunk()) return outOfPlace(r, "inside a stream");
      }
      c = std::move(*r.mutable_chunk());
      c.set_migration_id(id);
      return true;
    };
    auto got = target.receive(kCheckpointPeer, chunks, true);
    if (!got.ok()) return fail(got.status());
    if (!ended) return fail(invalidArgument("a stream of the checkpoint did not end"));
  }
  // The end: the caller sends it only once the file's XXH3 matched.
  auto more = next(r);
  if (!more.ok()) return fail(more.status());
  if (!*more || !r.has_end()) return fail(invalidArgument("the checkpoint has no end record: cut short?"));
  if (!name.empty() && !restore->net().rules_json().empty()) {
    auto renamed = net::renameExport(restore->net().rules_json(), name);
    if (!renamed.ok()) return fail(renamed.status());
    restore->mutable_net()->set_rules_json(std::move(*renamed));
  }
  auto restored = target.restore(kCheckpointPeer, id, false, restore->net(), restore->deadline_ms());
  if (!restored.ok()) return fail(restored.status());
  LXMIG_RETURN_IF_ERROR(target.commit(kCheckpointPeer, id));
  return out;
}

}  // namespace lxmig::migration
