// `lxmig exec NAME -- COMMAND...`: runs a command inside a container,
// wherever it lives; its output streams back as it comes and its exit code
// is lxmig's. -i passes stdin on; -t gives it a terminal (and passes stdin
// on), with this terminal in raw mode meanwhile and its size followed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>

#include "commands/command.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/grammar.h"
#include "manual.h"
#include "output/json.h"

namespace lxmig::cli {
namespace {

struct ExecOptions {
  std::string name;
  std::vector<std::string> command;
  unsigned timeoutS = 0;
  bool tty = false;
  bool interactive = false;
};

// The write end of a pipe the SIGWINCH handler writes to.
int g_winchFd = -1;
void onWinch(int) {
  if (g_winchFd >= 0) {
    int saved = errno;
    char c = 1;
    (void)!::write(g_winchFd, &c, 1);
    errno = saved;
  }
}

// This terminal in raw mode while it lives: keys go to the command as they
// are typed (^C included), the command's terminal does the echo.
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) != 0) return;
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    if (::tcsetattr(fd, TCSAFLUSH, &raw) == 0) active_ = true;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  struct termios saved_ {};
  bool active_ = false;
};

std::optional<v1::WindowSize> windowOf(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  v1::WindowSize w;
  w.set_rows(ws.ws_row);
  w.set_cols(ws.ws_col);
  return w;
}

void writeAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our own stdout is gone: the rest is dropped, the exit code still comes
    done += static_cast<size_t>(n);
  }
}

int exec(const Globals& g, Connector& conn, const ExecOptions& o) {
  const std::string what = "exec " + o.name;
  if (Status st = checkContainerName(o.name); !st.ok()) return fail("exec", st);
  if (g.json && o.tty) return failWith(what, "--json and -t do not go together (a terminal is not JSON)", 2);
  if (o.timeoutS > 24 * 3600) return failWith(what, "--timeout is at most a day (86400 s)", 2);
  auto where = conn.nodeOf(o.name, g.node);
  if (!where.ok()) return fail(what, where.status());
  auto t = conn.forNode(*where);
  if (!t.ok()) return fail(what, t.status());

  const bool forwardStdin = o.tty || o.interactive;
  v1::ExecInput first;
  v1::ExecRequest& rq = *first.mutable_start();
  rq.set_node(*where);
  rq.set_name(o.name);
  rq.set_timeout_ms(o.timeoutS * 1000);
  rq.set_tty(o.tty);
  rq.set_interactive(forwardStdin);
  for (const auto& c : o.command) rq.add_command(c);
  const bool localTerminal = o.tty && ::isatty(0);
  if (o.tty) {
    const char* term = std::getenv("TERM");
    rq.set_term(term && *term ? term : "xterm");
    if (auto w = windowOf(localTerminal ? 0 : 1)) *rq.mutable_window() = *w;
  }

  grpc::ClientContext ctx;
  // The agent ends the command at its timeout; this covers the call.
  if (o.timeoutS) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o.timeoutS + 30));
  auto stream = t->stub->Exec(&ctx);
  if (!stream->Write(first)) return fail(what, fromGrpc(stream->Finish()));

  int wake[2], winch[2];
  if (::pipe2(wake, O_CLOEXEC) != 0 || ::pipe2(winch, O_CLOEXEC | O_NONBLOCK) != 0)
    return fail(what, Status::fromErrno("pipe2", "exec"));
  UniqueFd wakeR(wake[0]), wakeW(wake[1]), winchR(winch[0]), winchW(winch[1]);
  std::optional<RawTerminal> raw;
  if (localTerminal) {
    raw.emplace(0);
    g_winchFd = winchW.get();
    struct sigaction sa {};
    sa.sa_handler = onWinch;
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGWINCH, &sa, nullptr);
  }

  // The command's output, on a thread of its own; it wakes the loop below
  // at the exit (the agent then waits for our side to close) or when the
  // stream ends.
  std::optional<v1::ExecExit> exit;
  std::string outText, errText;  // --json
  std::thread reader([&] {
    v1::ExecOutput out;
    char c = 1;
    while (stream->Read(&out)) {
      if (out.has_exit()) {
        exit = out.exit();
        (void)!::write(wakeW.get(), &c, 1);
      } else if (g.json)
        (out.has_stdout_data() ? outText : errText) += out.has_stdout_data() ? out.stdout_data() : out.stderr_data();
      else if (out.has_stdout_data()) writeAll(1, out.stdout_data());
      else writeAll(2, out.stderr_data());
    }
    (void)!::write(wakeW.get(), &c, 1);
  });

  // stdin and window changes go to the command until its output ends.
  bool stdinOpen = forwardStdin;
  std::array<char, 32 << 10> buf;
  for (;;) {
    std::array<pollfd, 3> fds = {pollfd{wakeR.get(), POLLIN, 0}, pollfd{winchR.get(), POLLIN, 0},
                                 pollfd{stdinOpen ? 0 : -1, POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    v1::ExecInput in;
    if (fds[1].revents) {
      while (::read(winchR.get(), buf.data(), buf.size()) > 0) {
      }
      if (auto w = windowOf(0)) {
        *in.mutable_resize() = *w;
        stream->Write(in);
      }
    }
    if (fds[2].revents) {
      ssize_t n = ::read(0, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        in.set_stdin_data(buf.data(), static_cast<size_t>(n));
      } else {
        in.set_stdin_closed(true);
        stdinOpen = false;
      }
      stream->Write(in);
    }
  }
  stream->WritesDone();
  reader.join();
  g_winchFd = -1;
  raw.reset();
  if (Status st = fromGrpc(stream->Finish()); !st.ok()) return fail(what, st);
  if (!exit) return fail(what, internalError("the agent ended the command's stream without its exit code"));
  if (!exit->reason().empty()) warn(what, exit->reason());
  if (g.json) printJson({{"exit_code", exit->exit_code()}, {"stdout", outText}, {"stderr", errText}});
  return exit->exit_code();
}

}  // namespace

Verb addExec(CLI::App& app) {
  auto* cmd = app.add_subcommand("exec", "run a command inside a container, wherever it lives");
  withExamples(cmd, {"lxmig exec web -- ps -ef", "lxmig exec -t db -- bash", "lxmig exec -i db -- psql app < fix.sql",
                     "lxmig exec --timeout 600 db -- pg_dump app > app.sql"});
  auto o = std::make_shared<ExecOptions>();
  cmd->add_option("name", o->name, "container name")->required();
  cmd->add_flag("-t,--tty", o->tty, "give the command a terminal, passing stdin and window size on");
  cmd->add_flag("-i,--interactive", o->interactive, "pass stdin on to the command");
  cmd->add_option("--timeout", o->timeoutS, "kill the command after this many seconds (default: no limit)");
  cmd->add_option("command", o->command, "command and arguments (after --)")->required();
  return {cmd, [o](const Globals& g, Connector& conn) { return exec(g, conn, *o); }};
}

}  // namespace lxmig::cli
