// Child processes: run a command to completion, or hold a running child by
// pidfd so it is killed and reaped unless released.
//
//   LXMIG_ASSIGN_OR_RETURN(auto out, runCommand({"nft", "-j", "list", "ruleset"}));
//   if (out.exitCode != 0) ...
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

namespace lxmig {

struct CommandOutput {
  int exitCode = -1;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
  bool truncated = false;  // CommandOptions::maxOutputBytes cut out or err
};

struct CommandOptions {
  std::string stdinData;
  int timeoutMs = 0;                  // 0: no limit; on expiry the child gets SIGKILL
  std::vector<std::string> extraEnv;  // "NAME=value", added to the environment
  // At most this much of stdout and of stderr is kept (0: all); the rest is
  // read and dropped, and `truncated` says so.
  size_t maxOutputBytes = 0;
};

// Runs argv[0] (PATH lookup) with stdout and stderr captured. Every other fd
// of the caller is closed in the child. Fails only if the command could not
// be run; a non-zero exit is reported in exitCode.
Result<CommandOutput> runCommand(const std::vector<std::string>& argv, const CommandOptions& opts = {});

// A running child. The destructor sends SIGKILL and reaps it unless it was
// waited for or released.
class Child {
 public:
  Child() = default;
  Child(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  Child(Child&& o) noexcept : pid_(o.pid_), pidfd_(std::move(o.pidfd_)) { o.pid_ = -1; }
  Child& operator=(Child&& o) noexcept {
    if (this != &o) {
      killAndReap();
      pid_ = o.pid_;
      o.pid_ = -1;
      pidfd_ = std::move(o.pidfd_);
    }
    return *this;
  }
  ~Child() { killAndReap(); }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Readable once the child has exited (poll it); -1 when none.
  int pidfd() const { return pidfd_.get(); }
  // Sends sig through the pidfd (no pid-reuse race).
  Status signal(int sig);
  // Waits up to timeoutMs (-1: forever); returns the exit code as above,
  // DeadlineExceeded on timeout.
  Result<int> wait(int timeoutMs = -1);
  pid_t release();

 private:
  void killAndReap();
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

// Sends `sig` to the children of `parent` and to the process groups they
// lead. `parent` must be a child of the caller that was not reaped: its own
// children's pids cannot be reused meanwhile unless it reaps them (each is
// checked to be its child again through a pidfd before the signal).
void signalChildrenOf(pid_t parent, int sig);

struct SpawnOptions {
  std::string stdoutPath = "/dev/null";  // appended to
  std::string stderrPath = "/dev/null";
  bool newSession = true;
  std::vector<std::string> extraEnv;  // "NAME=value", added to the child's environment
  // Descriptors of the caller given to the child as its stdin, stdout and
  // stderr instead of /dev/null and the paths above (-1: those).
  int stdinFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
  // With newSession: the terminal on stdinFd becomes the child's
  // controlling terminal (a pty's slave end).
  bool controllingTerminal = false;
};

// Starts argv[0] (looked up in PATH) with every fd above 2 closed, SIGPIPE
// at its default and no signal blocked. An argv[0] that cannot be run (or
// a stdout/stderr path that cannot be opened) is an error here, not an
// exit code, but for a controlling terminal or a caller fd among 0-2 (a
// fork: the child exits 127, or 126 for the paths).
Result<Child> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});

// Closes every fd >= minFd in the calling process (used right after fork).
void closeFdsFrom(int minFd);

// Runs fn on a thread of its own inside the namespace at `nsPath` (e.g.
// /proc/PID/ns/net) of type `nstype` (CLONE_NEWNET, CLONE_NEWIPC): setns
// acts per thread for these, and what the thread opens or forks lives
// there.
Status inNamespace(const std::string& nsPath, int nstype, const std::function<Status()>& fn);

}  // namespace lxmig
