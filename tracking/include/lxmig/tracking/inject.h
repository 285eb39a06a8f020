// Runs a system call inside another process, unnoticed: the thread is
// stopped with PTRACE_SEIZE + PTRACE_INTERRUPT (no signal is sent), its
// registers are saved, it executes one `syscall` instruction found in its
// own vDSO (nothing is written into its memory), and everything is put
// back: registers (so a system call it was blocked in restarts as if
// interrupted by a signal it ignores) and any signal that arrived meanwhile
// (re-delivered on detach). x86_64 only; elsewhere FailedPrecondition.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>

#include "lxmig/base/fd.h"
#include "lxmig/base/status.h"

namespace lxmig::tracking {

// Why a process cannot be injected, or "" when it can. Seccomp strict mode
// is an obstacle (a sandbox by design: lxmig does not lift it). A process
// under a seccomp filter of its own (systemd's SystemCallFilter=, sandboxed
// daemons) is injected with its filter suspended for the injected calls
// only (PTRACE_O_SUSPEND_SECCOMP: the filter could refuse or kill it for a
// call it never makes); that needs CAP_SYS_ADMIN and an agent that is not
// under seccomp itself, and attach() says so when they are missing.
std::string injectionObstacle(pid_t pid);

class Injector {
 public:
  // How long the thread may take to stop, and each injected step to end.
  // A task in a killable wait (a vfork parent whose child neither execs
  // nor exits) stops only when that wait ends, which a container can
  // delay forever.
  static constexpr int64_t kStopWaitMs = 2000;

  // Attaches to and stops the thread `pid` (a thread-group leader).
  // FailedPrecondition when ptrace is denied or seccomp forbids it,
  // DeadlineExceeded when it does not stop within kStopWaitMs: it stays
  // traced, and only the end of the calling thread (the tracer) lets it go
  // (the kernel detaches the tracees of a thread that exits; PTRACE_DETACH
  // needs a stopped one). Attach from a thread of its own, as
  // stealUserfaultfd() does.
  static Result<Injector> attach(pid_t pid);
  Injector(Injector&& o) noexcept;
  Injector& operator=(Injector&&) = delete;
  ~Injector();  // detach()

  // Runs syscall nr(args...) in the process and returns its result
  // (negative errno on failure in the process).
  Result<long> syscall(long nr, std::array<uint64_t, 6> args = {});
  // Restores registers and signals and lets the thread run. Idempotent.
  Status detach();

 private:
  explicit Injector(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool attached_ = false;
  uint64_t syscallInsn_ = 0;
  int pendingSignal_ = 0;
  alignas(16) unsigned char savedRegs_[27 * 8] = {};  // struct user_regs_struct
};

// Makes `pid` create a userfaultfd, takes it into this process with
// pidfd_getfd and closes the process's copy. A process that may not call
// userfaultfd() itself (not root, vm.unprivileged_userfaultfd = 0) gets it
// from /dev/userfaultfd, which this process opens and passes to it for the
// time of one ioctl (USERFAULTFD_IOC_NEW); no global setting changes.
// Runs in a thread of its own (see Injector::attach): DeadlineExceeded for
// a process that does not stop in time, which then runs on untouched.
Result<UniqueFd> stealUserfaultfd(pid_t pid);
// Which way stealUserfaultfd() takes for `pid`: "userfaultfd()" or
// "/dev/userfaultfd" (for doctor and the report).
std::string userfaultfdWay(pid_t pid);

}  // namespace lxmig::tracking
