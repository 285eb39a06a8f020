// `lxmig checkpoint NAME --export FILE [--leave-running]` and
// `lxmig restore --import FILE [--name NEW] [--node N]`: a container saved
// to a file of this machine and continued from it later, on any node
// (migration/checkpoint.h; the file: checkpoint_file.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "checkpoint_file.h"
#include "commands/command.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/proto/vocabulary.h"
#include "manual.h"
#include "output/json.h"
#include "output/progress.h"
#include "output/report.h"

namespace lxmig::cli {
namespace {

struct CheckpointOptions {
  std::string name;
  std::string file;
  bool leaveRunning = false;
};

struct RestoreOptions {
  std::string file;
  std::string name;
};

WriteFn writerTo(int fd, const std::string& path) {
  return [fd, path](const char* data, size_t n) -> Status {
    while (n > 0) {
      ssize_t k = ::write(fd, data, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return Status::fromErrno("write", path);
      data += k;
      n -= static_cast<size_t>(k);
    }
    return okStatus();
  };
}

// The file goes to FILE.partial first and takes its name once durable.
Status saveAs(int fd, const std::string& partial, const std::string& file) {
  if (::fsync(fd) != 0) return Status::fromErrno("fsync", partial);
  if (::rename(partial.c_str(), file.c_str()) != 0) return Status::fromErrno("rename to " + file, partial);
  std::string dir = std::filesystem::path(file).parent_path().string();
  UniqueFd d(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());
  return okStatus();
}

int checkpoint(const Globals& g, Connector& conn, const CheckpointOptions& o) {
  const std::string what = "checkpoint " + o.name;
  if (Status st = checkContainerName(o.name); !st.ok()) return fail("checkpoint", st);
  if (o.file.empty()) return failWith(what, "--export FILE is required", 2);
  auto where = conn.nodeOf(o.name, g.node);
  if (!where.ok()) return fail(what, where.status());
  auto t = conn.forNode(*where);
  if (!t.ok()) return fail(what, t.status());

  const std::string partial = o.file + ".partial";
  UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd && errno == EEXIST)
    return failWith(what, partial + " exists: another checkpoint writes it, or one was cut off (then remove it)");
  if (!fd) return fail(what, Status::fromErrno("create", partial));
  bool keepPartial = false;
  struct Cleanup {
    const std::string& path;
    bool& keep;
    ~Cleanup() {
      if (!keep) ::unlink(path.c_str());
    }
  } cleanup{partial, keepPartial};
  auto writer = CheckpointWriter::start(writerTo(fd.get(), partial));
  if (!writer.ok()) return fail(what, writer.status());

  grpc::ClientContext ctx;
  auto stream = t->stub->Checkpoint(&ctx);
  v1::CheckpointInput start;
  start.mutable_start()->set_node(*where);
  start.mutable_start()->set_name(o.name);
  start.mutable_start()->set_leave_running(o.leaveRunning);
  if (!stream->Write(start)) return fail(what, fromGrpc(stream->Finish()));
  const bool tty = ::isatty(2) && !g.quiet && !g.json;
  v1::CheckpointOutput out;
  v1::MigrationReport report;
  bool haveReport = false, saved = false;
  Status failed;
  while (stream->Read(&out)) {
    if (out.has_record()) {
      if (failed.ok()) failed = writer->add(out.record());
      if (!failed.ok()) ctx.TryCancel();  // the container thaws: the file cannot hold it
    } else if (out.has_sealed()) {
      if (failed.ok()) failed = writer->end(*where, wallMs());
      if (failed.ok()) failed = saveAs(fd.get(), partial, o.file);
      if (!failed.ok()) {
        ctx.TryCancel();
        continue;
      }
      saved = keepPartial = true;  // renamed: FILE now
      v1::CheckpointInput in;
      in.set_saved(true);
      stream->Write(in);
      stream->WritesDone();
    } else if (out.has_progress()) {
      if (tty && out.progress().phase() != v1::PHASE_START)
        std::fprintf(stderr, "\r\033[K%s", progressLine(out.progress()).c_str());
    } else if (out.has_report()) {
      report = out.report();
      haveReport = true;
      // The last message: closing our side ends the call now (a refused
      // checkpoint never asks for the word that the file is saved).
      if (!saved) stream->WritesDone();
    }
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  Status st = fromGrpc(stream->Finish());
  const bool committed = haveReport && report.result() == v1::RESULT_COMMITTED;
  if (saved && !committed) ::unlink(o.file.c_str());  // the container goes on where it ran: the file is no checkpoint
  if (!failed.ok()) return fail(what, failed);
  // A refused or failed checkpoint says why, as `migrate` does, whatever
  // became of the call after its report.
  if (haveReport && !committed) {
    printReport(report, g.json);
    return failWith(what, std::string(name(report.result())) + ": " + report.error());
  }
  if (!st.ok()) return fail(what, st);
  if (!haveReport) return fail(what, internalError("the agent ended without its report"));
  if (g.json) {
    printJson({{"container", o.name},
               {"node", *where},
               {"file", o.file},
               {"bytes", writer->bytes()},
               {"left_running", o.leaveRunning},
               {"id", report.id()}});
  } else if (!g.quiet) {
    std::printf("checkpointed %s (on %s) to %s: %s, id %s; %s\n", o.name.c_str(), where->c_str(), o.file.c_str(),
                humanBytes(writer->bytes()).c_str(), report.id().c_str(),
                o.leaveRunning ? "it still runs" : "it no longer runs (lxmig restore --import to continue it)");
  }
  return 0;
}

int restore(const Globals& g, Connector& conn, const RestoreOptions& o) {
  const std::string what = "restore " + o.file;
  if (!o.name.empty())
    if (Status st = checkContainerName(o.name); !st.ok()) return fail("restore", st);
  if (!g.node.empty())
    if (Status st = checkNodeName(g.node); !st.ok()) return fail("restore", st);
  UniqueFd fd(::open(o.file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail(what, Status::fromErrno("open", o.file));
  ReadFn in = [&](char* data, size_t n) -> Result<size_t> {
    for (;;) {
      ssize_t k = ::read(fd.get(), data, n);
      if (k >= 0) return static_cast<size_t>(k);
      if (errno != EINTR) return Status::fromErrno("read", o.file);
    }
  };
  auto reader = CheckpointReader::start(in);
  if (!reader.ok()) return fail(what, reader.status());
  auto t = conn.forNode(g.node);
  if (!t.ok()) return fail(what, t.status());

  grpc::ClientContext ctx;
  auto stream = t->stub->RestoreCheckpoint(&ctx);
  v1::ImportInput start;
  start.mutable_start()->set_node(g.node);
  start.mutable_start()->set_name(o.name);
  Status failed;
  // On a terminal: the file's bytes sent, rate and time left.
  const bool tty = ::isatty(2) && !g.quiet && !g.json;
  if (stream->Write(start)) {
    struct stat sb {};
    const uint64_t size = ::fstat(fd.get(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
    const int64_t t0 = monotonicNs();
    int64_t shown = 0;
    v1::ImportInput msg;
    for (;;) {
      auto more = reader->next(msg.mutable_record());
      if (!more.ok()) {
        failed = more.status();  // the agent restores nothing without the end record
        ctx.TryCancel();
        break;
      }
      if (!*more || !stream->Write(msg)) break;
      if (tty && monotonicNs() - shown > 200'000'000) {
        shown = monotonicNs();
        v1::Progress p;
        p.set_phase(v1::PHASE_TRANSFER);
        p.set_bytes_done(reader->bytes());
        p.set_bytes_total(size);
        p.set_elapsed_ms((shown - t0) / 1'000'000);
        if (shown > t0) p.set_rate_bps(static_cast<double>(reader->bytes()) * 1e9 / static_cast<double>(shown - t0));
        std::fprintf(stderr, "\r\033[K%s", progressLine(p).c_str());
      }
    }
    if (tty) std::fprintf(stderr, "\r\033[K[restore] %s sent, restoring...", humanBytes(reader->bytes()).c_str());
    stream->WritesDone();
  }
  v1::StepEvent ev;
  v1::ImportReply reply;
  bool replied = false;
  while (stream->Read(&ev))
    if (ev.has_restored()) {
      reply = ev.restored();
      replied = true;
    }
  if (tty) std::fprintf(stderr, "\r\033[K");
  Status st = fromGrpc(stream->Finish());
  if (!failed.ok()) return fail(what, failed);
  if (!st.ok()) return fail(what, st);
  if (!replied) return fail(what, internalError("the agent ended without its answer"));
  const v1::ContainerInfo& c = reply.container();
  if (g.json) {
    printJson({{"container", c.name()},
               {"node", c.node()},
               {"ip", c.ip()},
               {"state", c.state()},
               {"checkpoint_id", reply.checkpoint_id()},
               {"id", reply.report().id()}});
  } else if (!g.quiet) {
    std::printf("restored %s on %s at %s from %s (checkpoint %s)\n", c.name().c_str(), c.node().c_str(), c.ip().c_str(),
                o.file.c_str(), reply.checkpoint_id().c_str());
  }
  return 0;
}

}  // namespace

Verb addCheckpoint(CLI::App& app) {
  auto* cmd = app.add_subcommand("checkpoint", "save a running container to a file (it stops, unless --leave-running)");
  withExamples(
      cmd, {"lxmig checkpoint web --export web.ckpt", "lxmig checkpoint db --export /backup/db.ckpt --leave-running"});
  auto o = std::make_shared<CheckpointOptions>();
  cmd->add_option("name", o->name, "container name")->required();
  cmd->add_option("--export", o->file, "the file to write (FILE.partial until it is complete)")->required();
  cmd->add_flag("--leave-running", o->leaveRunning, "the container goes on running after the checkpoint");
  return {cmd, [o](const Globals& g, Connector& conn) { return checkpoint(g, conn, *o); }};
}

Verb addRestore(CLI::App& app) {
  auto* cmd = app.add_subcommand("restore", "continue a container from a checkpoint file, on this node or --node");
  withExamples(cmd, {"lxmig restore --import web.ckpt", "lxmig --node n2 restore --import web.ckpt --name web2"});
  auto o = std::make_shared<RestoreOptions>();
  cmd->add_option("--import", o->file, "the checkpoint file")->required();
  cmd->add_option("--name", o->name, "the container's name (default: the checkpointed one's)");
  return {cmd, [o](const Globals& g, Connector& conn) { return restore(g, conn, *o); }};
}

}  // namespace lxmig::cli
