// lxmig checkpoint / restore on the agent (migration/checkpoint.h): the
// checkpoint is a stop-and-copy migration whose target is the caller's
// file, the restore one whose source is.
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/migration/checkpoint.h"
#include "lxmig/migration/report.h"
#include "service.h"
#include "streams.h"

namespace lxmig::agent {
namespace {

using CheckpointStream = grpc::ServerReaderWriter<v1::CheckpointOutput, v1::CheckpointInput>;

// The checkpoint's records, progress and report on the caller's stream,
// and the caller's word that its file is saved.
class StreamSink final : public migration::RecordSink {
 public:
  StreamSink(grpc::ServerContext* ctx, CheckpointStream* stream) : ctx_(ctx), stream_(stream) {}

  bool write(const v1::CheckpointRecord& r) override {
    v1::CheckpointOutput o;
    *o.mutable_record() = r;
    return send(o);
  }
  Status awaitSaved(int timeoutMs) override {
    v1::CheckpointOutput o;
    o.set_sealed(true);
    if (!send(o)) return aborted("the checkpoint's caller went away before its file was saved");
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeoutMs), [this] { return saved_ || gone_; }))
      return aborted("the checkpoint's caller did not say its file was saved within " +
                     std::to_string(timeoutMs / 1000) + " s");
    if (!saved_) return aborted("the checkpoint's caller went away before its file was saved");
    return okStatus();
  }
  // Only a write that blocks (a caller that reads nothing) needs the call
  // broken; otherwise it goes on, and the caller gets the report of a
  // refused or failed checkpoint rather than a cancelled call.
  void breakOff() override {
    if (writing_) ctx_->TryCancel();
  }

  void progress(const v1::Progress& p) {
    v1::CheckpointOutput o;
    *o.mutable_progress() = p;
    send(o);
  }
  void report(const v1::MigrationReport& r) {
    v1::CheckpointOutput o;
    *o.mutable_report() = r;
    send(o);
  }
  // From the thread that reads the caller's messages.
  void saved() { mark(&saved_); }
  void gone() { mark(&gone_); }

 private:
  bool send(const v1::CheckpointOutput& o) {
    std::lock_guard lock(writeMu_);
    writing_ = true;
    const bool ok = stream_->Write(o);
    writing_ = false;
    return ok;
  }
  void mark(bool* flag) {
    std::lock_guard lock(mu_);
    *flag = true;
    cv_.notify_all();
  }
  grpc::ServerContext* ctx_;
  CheckpointStream* stream_;
  std::mutex writeMu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool saved_ = false, gone_ = false;
  std::atomic<bool> writing_{false};
};

}  // namespace

grpc::Status AgentService::Checkpoint(grpc::ServerContext* ctx, CheckpointStream* stream) {
  v1::CheckpointInput start;
  if (auto st = readStart(stream, &start, "checkpoint"); !st.ok()) return st;
  return checkpoint(ctx, stream, start);
}

grpc::Status AgentService::checkpoint(grpc::ServerContext* ctx, CheckpointStream* stream,
                                      const v1::CheckpointInput& start) {
  if (!start.has_start()) return toGrpc(invalidArgument("checkpoint: the first message must name the container"));
  const v1::CheckpointRequest& rq = start.start();
  if (remote(rq.node())) return relayBoth(node_, rq.node(), ctx, stream, start, &v1::Peer::Stub::Checkpoint);
  if (Status st = checkContainerName(rq.name()); !st.ok()) return toGrpc(st);

  StreamSink sink(ctx, stream);
  auto peers = migration::checkpointPeers(sink);
  v1::MigrateRequest mr;
  mr.set_node(node_.config().node);
  mr.set_container(rq.name());
  mr.set_target(migration::kCheckpointPeer);
  mr.set_mode(v1::MODE_STOP_AND_COPY);  // a file keeps one image, not rounds
  mr.set_reason("checkpoint");
  migration::SourceContext sc = sourceContext(*peers);
  sc.keepRunning = rq.leave_running();
  migration::Source source(
      sc, mr, [&](const v1::Progress& p) { sink.progress(p); }, [&] { return ctx->IsCancelled(); });
  auto lock = lockForMove(source, rq.name());
  if (!lock.ok()) return toGrpc(lock.status());
  CallerInputs<v1::CheckpointInput, v1::CheckpointOutput> inputs(
      ctx, stream,
      [&](v1::CheckpointInput& in) {
        if (in.input_case() != v1::CheckpointInput::kSaved) return false;
        sink.saved();
        return true;
      },
      [&] { sink.gone(); });
  sink.report(runSource(source, rq.name(), *lock));
  inputs.finish();
  return grpc::Status::OK;
}

grpc::Status AgentService::RestoreCheckpoint(grpc::ServerContext* ctx,
                                             grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>* stream) {
  v1::ImportInput start;
  if (auto st = readStart(stream, &start, "restore"); !st.ok()) return st;
  return restoreCheckpoint(ctx, stream, start);
}

grpc::Status AgentService::restoreCheckpoint(grpc::ServerContext* ctx,
                                             grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>* stream,
                                             const v1::ImportInput& start) {
  if (!start.has_start()) return toGrpc(invalidArgument("restore: the first message must say where"));
  const v1::ImportRequest& rq = start.start();
  if (remote(rq.node())) return relayBoth(node_, rq.node(), ctx, stream, start, &v1::Peer::Stub::RestoreCheckpoint);
  auto next = [&](v1::CheckpointRecord& r) -> Result<bool> {
    v1::ImportInput in;
    if (!stream->Read(&in)) {
      if (ctx->IsCancelled()) return cancelled("the caller went away before the whole checkpoint arrived");
      return false;
    }
    if (!in.has_record()) return invalidArgument("restore: a second start");
    r = std::move(*in.mutable_record());
    return true;
  };
  auto done = migration::importCheckpoint(target_, host_, peers_, rq.name(), next);
  if (!done.ok()) return toGrpc(done.status());
  (void)node_.audit().addEvent(done->migrationId, "info",
                               "restored from checkpoint " + done->checkpointId + " taken on " + done->takenOn);
  LXMIG_LOG(kInfo, "agent") << "restored `" << done->container << "` from checkpoint " << done->checkpointId;
  v1::StepEvent ev;
  v1::ImportReply* ir = ev.mutable_restored();
  ir->set_checkpoint_id(done->checkpointId);
  if (auto info = node_.info(done->container); info.ok()) *ir->mutable_container() = *info;
  if (auto rec = node_.audit().getMigration(done->migrationId); rec.ok())
    *ir->mutable_report() = migration::fromRecord(*rec);
  stream->Write(ev);
  return grpc::Status::OK;
}

grpc::Status PeerService::Checkpoint(grpc::ServerContext* ctx, CheckpointStream* stream) {
  v1::CheckpointInput start;
  if (auto st = readStart(stream, &start, "checkpoint"); !st.ok()) return st;
  if (auto who = forwarded(ctx, start.start().node(), "checkpoint " + start.start().name().substr(0, 64)); !who.ok())
    return toGrpc(who.status());
  return ops_.checkpoint(ctx, stream, start);
}

grpc::Status PeerService::RestoreCheckpoint(grpc::ServerContext* ctx,
                                            grpc::ServerReaderWriter<v1::StepEvent, v1::ImportInput>* stream) {
  v1::ImportInput start;
  if (auto st = readStart(stream, &start, "restore"); !st.ok()) return st;
  if (auto who = forwarded(ctx, start.start().node(), "restore " + start.start().name().substr(0, 64)); !who.ok())
    return toGrpc(who.status());
  return ops_.restoreCheckpoint(ctx, stream, start);
}

}  // namespace lxmig::agent
