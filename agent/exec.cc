#include "exec.h"

#include <poll.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>

#include "lxmig/base/log.h"
#include "lxmig/proto/rpc_status.h"
#include "streams.h"

namespace lxmig::agent {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 64 << 10;  // output read, and stdin accepted, per message
constexpr size_t kDrainBytes = 4 << 20;   // output still read after the command ended

// Writes all of `data` to the non-blocking `fd`; false when it cannot take
// more (the command closed its stdin or ended) or `over` is set.
bool writeAll(int fd, std::string_view data, const std::atomic<bool>& over) {
  while (!data.empty()) {
    if (over.load()) return false;
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else {
      return false;
    }
  }
  return true;
}

// One output stream of the command: stdout or stderr (or the terminal).
struct Output {
  int fd;
  bool isErr;
  bool open;
};

// Reads what `out` has now; false when the caller is gone. Closes it at
// its end (EOF, or EIO from a terminal whose other side is closed).
bool pass(Output& out, ExecStream* stream, size_t* budget = nullptr) {
  std::array<char, kChunkBytes> buf;
  ssize_t n = ::read(out.fd, buf.data(), buf.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) {
    out.open = false;
    return true;
  }
  if (budget) *budget = *budget > static_cast<size_t>(n) ? *budget - static_cast<size_t>(n) : 0;
  v1::ExecOutput o;
  if (out.isErr) o.set_stderr_data(buf.data(), static_cast<size_t>(n));
  else o.set_stdout_data(buf.data(), static_cast<size_t>(n));
  return stream->Write(o);
}

}  // namespace

grpc::Status serveExec(node::Node& node, grpc::ServerContext* ctx, ExecStream* stream, const v1::ExecRequest& start) {
  auto started = node.startExec(start);
  if (!started.ok()) return toGrpc(started.status());
  node::ExecSession& s = *started;
  LXMIG_LOG(kInfo, "agent") << "exec in " << start.name() << ": " << start.command(0) << (s.tty ? " (terminal)" : "");

  std::atomic<bool> over{false};
  CallerInputs<v1::ExecInput, v1::ExecOutput> inputs(ctx, stream, [&](v1::ExecInput& in) {
    switch (in.input_case()) {
      case v1::ExecInput::kStdinData:
        if (in.stdin_data().size() > kChunkBytes) return false;
        if (s.input && !writeAll(s.input.get(), in.stdin_data(), over)) s.input.reset();
        return true;
      case v1::ExecInput::kStdinClosed:
        // On a terminal, the end of input is a ^D (VEOF) typed at the start
        // of a line: sent for a caller whose stdin was a file.
        if (s.tty && s.input) writeAll(s.input.get(), "\x04", over);
        s.input.reset();
        return true;
      case v1::ExecInput::kResize:
        if (Status st = s.resize(in.resize().rows(), in.resize().cols()); !st.ok())
          LXMIG_LOG(kDebug, "agent") << "exec in " << start.name() << ": " << st.message();
        return true;
      default:
        return false;  // a second start, or nothing: the caller is confused
    }
  });

  const auto deadline =
      start.timeout_ms() ? Clock::now() + std::chrono::milliseconds(start.timeout_ms()) : Clock::time_point::max();
  std::string reason;
  std::array<Output, 2> outs = {Output{s.output.get(), false, true},
                                Output{s.errors ? s.errors.get() : -1, true, static_cast<bool>(s.errors)}};
  bool exited = false;
  while (!exited) {
    if (ctx->IsCancelled()) {
      over = true;
      s.kill();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away; the command was killed");
    }
    if (reason.empty() && Clock::now() >= deadline) {
      s.kill();
      reason = "killed after its timeout of " + std::to_string(start.timeout_ms() / 1000) + " s";
    }
    s.keepTerminalRaw();
    std::array<pollfd, 3> fds{};
    nfds_t n = 0;
    for (const auto& o : outs)
      if (o.open) fds[n++] = {o.fd, POLLIN, 0};
    fds[n++] = {s.child.pidfd(), POLLIN, 0};
    if (::poll(fds.data(), n, 100) < 0 && errno != EINTR) {
      Status st = Status::fromErrno("poll", "exec");
      over = true;
      s.kill();
      return toGrpc(st);
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (fds[i].fd == s.child.pidfd()) {
        exited = true;
        continue;
      }
      for (auto& o : outs)
        if (o.open && o.fd == fds[i].fd && !pass(o, stream)) {
          over = true;
          s.kill();
          return grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away; the command was killed");
        }
    }
  }
  // What the command wrote before it ended; a process it left behind that
  // keeps writing is not waited for.
  size_t budget = kDrainBytes;
  for (auto& o : outs)
    while (o.open && budget > 0) {
      pollfd p{o.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      if (!pass(o, stream, &budget)) break;
    }
  auto code = s.child.wait(1000);
  over = true;
  v1::ExecOutput last;
  last.mutable_exit()->set_exit_code(code.ok() ? *code : -1);
  last.mutable_exit()->set_reason(reason);
  stream->Write(last);
  inputs.finish();
  return grpc::Status::OK;
}

}  // namespace lxmig::agent
