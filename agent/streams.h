// What the agent's two-way streams share (lxmig exec, checkpoint, restore):
// the caller's messages read on a thread of their own, and the same call
// relayed to the peer that serves it. Private to the agent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "lxmig/node/node.h"
#include "lxmig/proto/rpc_status.h"
#include "lxmig/v1/agent.grpc.pb.h"

namespace lxmig::agent {

// How long a caller has to close its side once the exchange is over.
inline constexpr auto kCloseGrace = std::chrono::seconds(5);

// Reads the first message of a two-way stream, the one that says what to
// do; CANCELLED naming `what` when the caller sent nothing.
template <typename In, typename Out>
grpc::Status readStart(grpc::ServerReaderWriter<Out, In>* stream, In* start, const char* what) {
  if (stream->Read(start)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::CANCELLED, std::string(what) + ": the caller sent nothing");
}

// Reads the caller's messages on a thread of its own and hands each to `fn`
// (false: read no more); `atEnd` runs when reading stops. When the exchange
// is over (finish), the caller has kCloseGrace to close its side before the
// call is cancelled, so a caller that never does cannot hold the agent's
// threads.
template <typename In, typename Out>
class CallerInputs {
 public:
  CallerInputs(grpc::ServerContext* ctx, grpc::ServerReaderWriter<Out, In>* stream, std::function<bool(In&)> fn,
               std::function<void()> atEnd = {})
      : ctx_(ctx) {
    thread_ = std::thread([this, stream, fn = std::move(fn), atEnd = std::move(atEnd)] {
      In in;
      while (stream->Read(&in) && fn(in)) {
      }
      if (atEnd) atEnd();
      std::lock_guard lock(mu_);
      ended_ = true;
      cv_.notify_all();
    });
  }
  ~CallerInputs() { finish(); }
  CallerInputs(const CallerInputs&) = delete;
  CallerInputs& operator=(const CallerInputs&) = delete;

  void finish() {
    if (!thread_.joinable()) return;
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kCloseGrace, [this] { return ended_; })) ctx_->TryCancel();
    lock.unlock();
    thread_.join();
  }

 private:
  grpc::ServerContext* ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ended_ = false;
  std::thread thread_;
};

// The same two-way call on `target`'s agent (its Peer service), `start`
// first, then everything both ways until the peer ends it. A caller that
// goes cancels the peer's call.
template <typename In, typename Out, typename Method>
grpc::Status relayBoth(node::Node& node, const std::string& target, grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<Out, In>* stream, const In& start, Method method) {
  auto stub = node.peer(target);
  if (!stub.ok()) return toGrpc(stub.status());
  grpc::ClientContext cctx;
  auto peer = ((**stub).*method)(&cctx);
  if (peer->Write(start)) {
    CallerInputs<In, Out> inputs(
        ctx, stream, [&](In& in) { return peer->Write(in); },
        [&] {
          if (ctx->IsCancelled()) cctx.TryCancel();
          else peer->WritesDone();
        });
    Out out;
    while (peer->Read(&out))
      if (!stream->Write(out)) {
        cctx.TryCancel();
        break;
      }
    inputs.finish();
  }
  grpc::Status st = peer->Finish();
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE)
    return grpc::Status(st.error_code(), "node " + target + " unreachable: " + st.error_message());
  return st;
}

}  // namespace lxmig::agent
