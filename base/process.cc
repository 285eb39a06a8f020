#include "lxmig/base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "lxmig/base/files.h"

extern char** environ;

namespace lxmig {
namespace {

int pidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int exitCodeOf(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

std::vector<char*> cArgs(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> mergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv = *e;
    bool overridden = false;
    for (const auto& x : extra) {
      auto eq = x.find('=');
      if (kv.substr(0, eq + 1) == std::string_view(x).substr(0, eq + 1)) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

}  // namespace

void closeFdsFrom(int minFd) {
  if (::syscall(SYS_close_range, minFd, ~0U, 0) == 0) return;
  for (int fd = minFd; fd < 65536; ++fd) ::close(fd);
}

Result<CommandOutput> runCommand(const std::vector<std::string>& argv, const CommandOptions& opts) {
  if (argv.empty()) return invalidArgument("runCommand: empty argv");
  int inPipe[2], outPipe[2], errPipe[2];
  if (::pipe2(inPipe, O_CLOEXEC) != 0) return Status::fromErrno("pipe", argv[0]);
  UniqueFd inR(inPipe[0]), inW(inPipe[1]);
  if (::pipe2(outPipe, O_CLOEXEC) != 0) return Status::fromErrno("pipe", argv[0]);
  UniqueFd outR(outPipe[0]), outW(outPipe[1]);
  if (::pipe2(errPipe, O_CLOEXEC) != 0) return Status::fromErrno("pipe", argv[0]);
  UniqueFd errR(errPipe[0]), errW(errPipe[1]);

  auto args = cArgs(argv);
  auto envStrings = mergedEnv(opts.extraEnv);
  auto envp = cArgs(envStrings);
  pid_t pid = ::fork();
  if (pid < 0) return Status::fromErrno("fork", argv[0]);
  if (pid == 0) {
    ::dup2(inR.get(), 0);
    ::dup2(outW.get(), 1);
    ::dup2(errW.get(), 2);
    closeFdsFrom(3);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], ::strerror(errno));
    ::_exit(127);
  }
  inR.reset();
  outW.reset();
  errW.reset();
  Child child(pid, UniqueFd(pidfdOpen(pid)));

  CommandOutput result;
  size_t inOff = 0;
  if (opts.stdinData.empty()) inW.reset();
  else ::fcntl(inW.get(), F_SETFL, O_NONBLOCK);
  int64_t deadline = opts.timeoutMs > 0 ? monotonicNs() + int64_t{opts.timeoutMs} * 1000000 : 0;
  while (outR || errR) {
    pollfd fds[3];
    int n = 0;
    if (outR) fds[n++] = {outR.get(), POLLIN, 0};
    if (errR) fds[n++] = {errR.get(), POLLIN, 0};
    if (inW) fds[n++] = {inW.get(), POLLOUT, 0};
    int waitMs = -1;
    if (deadline) {
      waitMs = static_cast<int>((deadline - monotonicNs()) / 1000000);
      if (waitMs <= 0) {
        (void)child.signal(SIGKILL);
        (void)child.wait();
        return Status(Code::kDeadlineExceeded,
                      "command `" + argv[0] + "` timed out after " + std::to_string(opts.timeoutMs) + " ms");
      }
    }
    int r = ::poll(fds, static_cast<nfds_t>(n), waitMs);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::fromErrno("poll", argv[0]);
    }
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (inW && fds[i].fd == inW.get()) {
        ssize_t w = ::write(inW.get(), opts.stdinData.data() + inOff, opts.stdinData.size() - inOff);
        if (w > 0) inOff += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) inW.reset();
        if (inOff >= opts.stdinData.size()) inW.reset();
        continue;
      }
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      bool isOut = outR && fds[i].fd == outR.get();
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        (isOut ? outR : errR).reset();
        continue;
      }
      std::string& into = isOut ? result.out : result.err;
      size_t keep = static_cast<size_t>(got);
      if (opts.maxOutputBytes && into.size() + keep > opts.maxOutputBytes) {
        keep = opts.maxOutputBytes - std::min(opts.maxOutputBytes, into.size());
        result.truncated = true;
      }
      into.append(buf, keep);
    }
  }
  inW.reset();
  LXMIG_ASSIGN_OR_RETURN(result.exitCode, child.wait());
  return result;
}

Status Child::signal(int sig) {
  if (pid_ <= 0) return notFound("no child");
  if (pidfd_) {
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0)
      return Status::fromErrno("pidfd_send_signal", std::to_string(pid_));
    return okStatus();
  }
  if (::kill(pid_, sig) != 0) return Status::fromErrno("kill", std::to_string(pid_));
  return okStatus();
}

Result<int> Child::wait(int timeoutMs) {
  if (pid_ <= 0) return notFound("no child");
  if (timeoutMs >= 0 && pidfd_) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, timeoutMs);
    while (r < 0 && errno == EINTR);
    if (r == 0) return Status(Code::kDeadlineExceeded, "child " + std::to_string(pid_) + " still running");
  }
  int ws = 0;
  pid_t r;
  do r = ::waitpid(pid_, &ws, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Status::fromErrno("waitpid", std::to_string(pid_));
  pid_ = -1;
  pidfd_.reset();
  return exitCodeOf(ws);
}

pid_t Child::release() {
  pidfd_.reset();
  return std::exchange(pid_, -1);
}

void Child::killAndReap() {
  if (pid_ <= 0) return;
  (void)signal(SIGKILL);
  int ws;
  while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  pidfd_.reset();
}

namespace {

// posix_spawn (glibc: clone with CLONE_VM | CLONE_VFORK): no copy of the
// agent's page tables and none of the copy-on-write faults that follow a
// fork; a fork and exec from the agent took 5-7 ms, and several run in the
// frozen window (CRIU's dump and restore). Covers every option but a
// controlling terminal and caller fds among 0-2 (spawn forks for those).
Result<Child> posixSpawn(const std::vector<std::string>& argv, const SpawnOptions& opts, char* const* args,
                         char* const* envp) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if (int e = ::posix_spawn_file_actions_init(&fa); e != 0) return Status::fromErrno("spawn", argv[0], e);
  if (int e = ::posix_spawnattr_init(&attr); e != 0) {
    ::posix_spawn_file_actions_destroy(&fa);
    return Status::fromErrno("spawn", argv[0], e);
  }
  int e = 0;
  auto wire = [&](int given, const std::string& path, int flags, int target) {
    if (e != 0) return;
    e = given >= 0 ? ::posix_spawn_file_actions_adddup2(&fa, given, target)
                   : ::posix_spawn_file_actions_addopen(&fa, target, path.c_str(), flags, 0644);
  };
  wire(opts.stdinFd, "/dev/null", O_RDONLY, 0);
  wire(opts.stdoutFd, opts.stdoutPath, O_WRONLY | O_CREAT | O_APPEND, 1);
  wire(opts.stderrFd, opts.stderrPath, O_WRONLY | O_CREAT | O_APPEND, 2);
  if (e == 0) e = ::posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  sigset_t none, pipe;
  sigemptyset(&none);
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (opts.newSession ? POSIX_SPAWN_SETSID : 0);
  if (e == 0) e = ::posix_spawnattr_setsigmask(&attr, &none);
  if (e == 0) e = ::posix_spawnattr_setsigdefault(&attr, &pipe);
  if (e == 0) e = ::posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  if (e == 0) e = ::posix_spawnp(&pid, args[0], &fa, &attr, args, envp);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&fa);
  if (e != 0) return Status::fromErrno("exec", argv[0], e);
  return Child(pid, UniqueFd(pidfdOpen(pid)));
}

}  // namespace

Result<Child> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  if (argv.empty()) return invalidArgument("spawn: empty argv");
  auto args = cArgs(argv);
  // Built before the fork: the child of a threaded parent may only make
  // async-signal-safe calls.
  auto envStrings = mergedEnv(opts.extraEnv);
  auto envp = cArgs(envStrings);
  const bool lowFd = (opts.stdinFd >= 0 && opts.stdinFd < 3) || (opts.stdoutFd >= 0 && opts.stdoutFd < 3) ||
                     (opts.stderrFd >= 0 && opts.stderrFd < 3);
  if (!opts.controllingTerminal && !lowFd) return posixSpawn(argv, opts, args.data(), envp.data());
  pid_t pid = ::fork();
  if (pid < 0) return Status::fromErrno("fork", argv[0]);
  if (pid == 0) {
    // Moved above the three first fds before dup2 puts them in place, so
    // one given as 0 is not closed by another's dup2.
    int in = opts.stdinFd >= 0 ? ::fcntl(opts.stdinFd, F_DUPFD, 3) : ::open("/dev/null", O_RDONLY);
    int out = opts.stdoutFd >= 0 ? ::fcntl(opts.stdoutFd, F_DUPFD, 3)
                                 : ::open(opts.stdoutPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err = opts.stderrFd >= 0 ? ::fcntl(opts.stderrFd, F_DUPFD, 3)
                                 : ::open(opts.stderrPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    closeFdsFrom(3);
    if (opts.newSession) {
      ::setsid();
      if (opts.controllingTerminal && ::ioctl(0, TIOCSCTTY, 0) != 0) ::_exit(126);
    }
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], ::strerror(errno));
    ::_exit(127);
  }
  return Child(pid, UniqueFd(pidfdOpen(pid)));
}

void signalChildrenOf(pid_t parent, int sig) {
  const std::string p = std::to_string(parent);
  auto kids = readFile("/proc/" + p + "/task/" + p + "/children");
  if (!kids.ok()) return;
  for (const auto& word : split(*kids, ' ')) {
    uint64_t kid = 0;
    if (!parseUint64(word, &kid) || kid == 0 || kid > INT32_MAX) continue;
    UniqueFd pidfd(pidfdOpen(static_cast<pid_t>(kid)));
    if (!pidfd) continue;
    // Still the child of `parent` now that the pidfd pins it.
    auto stat = readFile("/proc/" + std::string(word) + "/stat");
    if (!stat.ok()) continue;
    size_t close = stat->rfind(')');
    if (close == std::string::npos) continue;
    auto fields = split(stat->substr(close + 1), ' ');
    if (fields.size() < 3 || fields[1] != p) continue;  // after the ')': state, ppid, pgrp
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0);
    if (fields[2] == word) ::kill(-static_cast<pid_t>(kid), sig);
  }
}

Status inNamespace(const std::string& nsPath, int nstype, const std::function<Status()>& fn) {
  UniqueFd ns(::open(nsPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Status::fromErrno("open", nsPath);
  Status st;
  std::thread t([&] {
    if (::setns(ns.get(), nstype) != 0) {
      st = Status::fromErrno("setns", nsPath);
      return;
    }
    st = fn();
  });
  t.join();
  return st;
}

}  // namespace lxmig
