// lxmig exec inside a container: lxc-attach with pipes, or on a pty whose
// slave end is its controlling terminal (lxc-attach then gives the command
// a terminal inside the container and passes window changes on).
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>

#include <chrono>
#include <thread>

#include "lxmig/base/grammar.h"
#include "lxmig/node/node.h"

namespace lxmig::node {
namespace {

// How long startExec watches for lxc-attach's terminal setup (ms).
constexpr int kTerminalWatchMs = 300;

constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

Status checkCommand(const google::protobuf::RepeatedPtrField<std::string>& command) {
  if (command.empty()) return invalidArgument("no command to run");
  if (static_cast<size_t>(command.size()) > kMaxExecArgs)
    return invalidArgument("the command has " + std::to_string(command.size()) + " arguments, more than " +
                           std::to_string(kMaxExecArgs));
  size_t bytes = 0;
  for (const auto& a : command) {
    if (a.find('\0') != std::string::npos) return invalidArgument("an argument of the command holds a NUL byte");
    bytes += a.size();
  }
  if (bytes > kMaxExecArgBytes)
    return invalidArgument("the command's arguments take " + std::to_string(bytes) + " bytes, more than " +
                           std::to_string(kMaxExecArgBytes));
  return okStatus();
}

Status checkTerm(const std::string& term) {
  bool ok = !term.empty() && term.size() <= 64;
  for (char c : term)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-');
  if (!ok) return invalidArgument("TERM `" + term.substr(0, 64) + "` is not a terminal type name");
  return okStatus();
}

Status checkWindow(uint32_t rows, uint32_t cols) {
  if (rows > kMaxTerminalSide || cols > kMaxTerminalSide)
    return invalidArgument("a terminal of " + std::to_string(rows) + "x" + std::to_string(cols) + " is too large");
  return okStatus();
}

Status setWindow(int fd, uint32_t rows, uint32_t cols) {
  if (rows == 0 || cols == 0) return okStatus();  // unknown: the terminal's default
  struct winsize ws {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(fd, TIOCSWINSZ, &ws) != 0) return Status::fromErrno("TIOCSWINSZ", "the exec terminal");
  return okStatus();
}

Status nonBlocking(const UniqueFd& fd) {
  int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) != 0) return Status::fromErrno("fcntl O_NONBLOCK", "exec");
  return okStatus();
}

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::fromErrno("pipe2", "exec");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

Status ExecSession::resize(uint32_t rows, uint32_t cols) const {
  if (!tty) return okStatus();
  LXMIG_RETURN_IF_ERROR(checkWindow(rows, cols));
  return setWindow(output.get(), rows, cols);
}

bool ExecSession::keepTerminalRaw() const {
  struct termios t {};
  if (!tty || ::tcgetattr(output.get(), &t) != 0 || !(t.c_oflag & ONLCR)) return false;
  t.c_oflag &= ~ONLCR;
  return ::tcsetattr(output.get(), TCSANOW, &t) == 0;
}

void ExecSession::kill() {
  if (!child.running()) return;
  // Without a terminal the command stays in lxc-attach's process group
  // (lxc-attach leads one of its own: spawn's new session; not reaped, so
  // the group's id cannot be reused), and so do the processes it started.
  // With one, the command leads a session inside the container: it is
  // lxc-attach's child there, and its group goes with it.
  signalChildrenOf(child.pid(), SIGKILL);
  ::kill(-child.pid(), SIGKILL);
  (void)child.signal(SIGKILL);
}

Result<ExecSession> Node::startExec(const v1::ExecRequest& req) {
  LXMIG_ASSIGN_OR_RETURN(Spec s, spec(req.name()));
  if (Status st = checkCommand(req.command()); !st.ok())
    return Status(st.code(), st.message() + " in `" + s.name + "`");
  if (req.timeout_ms() > kMaxExecTimeoutMs)
    return invalidArgument("an exec timeout of " + std::to_string(req.timeout_ms() / 1000) + " s is over a day");
  if (req.tty()) {
    LXMIG_RETURN_IF_ERROR(checkTerm(req.term().empty() ? "xterm" : req.term()));
    LXMIG_RETURN_IF_ERROR(checkWindow(req.window().rows(), req.window().cols()));
  }
  if (restoring(reservations_.kind(s.name)))
    return failedPrecondition("container `" + s.name +
                              "` is busy: " + reservations_.why(s.name).value_or("being restored"));
  container::RunState rs = lxc_.state(s.name);
  if (rs != container::RunState::kRunning)
    return failedPrecondition("container `" + s.name + "` is " + container::runStateName(rs) + ", not RUNNING");

  std::vector<std::string> argv = {"lxc-attach", "-P", lxc_.lxcPath(), "-n", s.name, "--clear-env", "-v", kPath};
  if (req.tty()) argv.insert(argv.end(), {"-v", "TERM=" + (req.term().empty() ? "xterm" : req.term())});
  argv.push_back("--");
  argv.insert(argv.end(), req.command().begin(), req.command().end());

  ExecSession session;
  SpawnOptions o;
  UniqueFd childIn, childOut, childErr;  // the child's ends, closed here once it runs
  if (req.tty()) {
    // Raw: the terminal the command sees is the one lxc-attach makes inside
    // the container; this one only carries its bytes.
    struct termios raw {};
    ::cfmakeraw(&raw);
    int master = -1, slave = -1;
    if (::openpty(&master, &slave, nullptr, &raw, nullptr) != 0) return Status::fromErrno("openpty", "exec");
    session.output.reset(master);
    childIn.reset(slave);
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave, F_SETFD, FD_CLOEXEC);
    LXMIG_RETURN_IF_ERROR(setWindow(master, req.window().rows(), req.window().cols()));
    session.input.reset(::fcntl(master, F_DUPFD_CLOEXEC, 0));
    if (!session.input) return Status::fromErrno("dup", "the exec terminal");
    session.tty = true;
    o.stdinFd = o.stdoutFd = o.stderrFd = slave;
    o.controllingTerminal = true;
  } else {
    LXMIG_ASSIGN_OR_RETURN(Pipe out, makePipe());
    LXMIG_ASSIGN_OR_RETURN(Pipe err, makePipe());
    session.output = std::move(out.read);
    session.errors = std::move(err.read);
    childOut = std::move(out.write);
    childErr = std::move(err.write);
    o.stdoutFd = childOut.get();
    o.stderrFd = childErr.get();
    if (req.interactive()) {
      LXMIG_ASSIGN_OR_RETURN(Pipe in, makePipe());
      session.input = std::move(in.write);
      childIn = std::move(in.read);
      o.stdinFd = childIn.get();
    }
  }
  for (const UniqueFd* fd : {&session.input, &session.output, &session.errors})
    if (*fd) LXMIG_RETURN_IF_ERROR(nonBlocking(*fd));
  LXMIG_ASSIGN_OR_RETURN(session.child, spawn(argv, o));
  // lxc-attach sets the terminal up before it enters the container: most
  // of the time this sees it first, before the command writes.
  for (int i = 0; session.tty && i < kTerminalWatchMs && !session.keepTerminalRaw(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return session;
}

}  // namespace lxmig::node
