#include "lxmig/tracking/inject.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/base/log.h"

namespace lxmig::tracking {
namespace {

constexpr const char* kLog = "inject";

#if defined(__x86_64__)
static_assert(sizeof(user_regs_struct) <= 27 * 8);
#endif

Result<uint64_t> findSyscallInsn(pid_t pid) {
  auto maps = readFile("/proc/" + std::to_string(pid) + "/maps");
  if (!maps.ok()) return maps.status();
  // No mapping at all: the process is exiting (its memory is gone already)
  // or a zombie. NotFound, as for one that has exited: nothing to watch.
  if (trim(*maps).empty()) return notFound("pid " + std::to_string(pid) + " is exiting");
  for (const auto& line : split(*maps, '\n')) {
    if (line.find("[vdso]") == std::string::npos) continue;
    uint64_t start = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    uint64_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    std::vector<unsigned char> buf(end - start);
    iovec local{buf.data(), buf.size()}, remote{reinterpret_cast<void*>(start), buf.size()};
    ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return Status::fromErrno("process_vm_readv vdso of pid", std::to_string(pid));
    for (ssize_t i = 0; i + 1 < n; ++i)
      if (buf[i] == 0x0f && buf[i + 1] == 0x05) return start + static_cast<uint64_t>(i);
  }
  return failedPrecondition("pid " + std::to_string(pid) + " has no vDSO syscall instruction");
}

// The process's seccomp mode (the Seccomp: line of its status: 0 none,
// 1 strict, 2 filter).
Result<int> seccompMode(pid_t pid) {
  LXMIG_ASSIGN_OR_RETURN(std::string st, readFile("/proc/" + std::to_string(pid) + "/status"));
  for (const auto& line : split(st, '\n')) {
    if (!startsWith(line, "Seccomp:")) continue;
    std::string mode(trim(line.substr(8)));
    return mode == "1" ? 1 : mode == "2" ? 2 : 0;
  }
  return 0;
}

// The tracee's next state change (waitpid's status), or DeadlineExceeded
// once Injector::kStopWaitMs have passed. Polled: a blocking waitpid cannot
// be given a deadline, and a ptrace stop normally comes within
// microseconds, so the first polls are short.
Result<int> waitTracee(pid_t pid, const char* what) {
  const int64_t deadline = monotonicNs() + Injector::kStopWaitMs * 1000000;
  for (int64_t pauseUs = 5;; pauseUs = std::min<int64_t>(pauseUs * 2, 2000)) {
    int ws = 0;
    const pid_t r = ::waitpid(pid, &ws, __WALL | WNOHANG);
    if (r == pid) return ws;
    if (r < 0 && errno != EINTR) return Status::fromErrno("waitpid", std::to_string(pid));
    if (monotonicNs() > deadline)
      return deadlineExceeded("pid " + std::to_string(pid) + " did not " + what + " within " +
                              std::to_string(Injector::kStopWaitMs) +
                              " ms (a task in a killable wait, e.g. a vfork parent whose child has not exec'd, "
                              "stops only when the wait ends)");
    std::this_thread::sleep_for(std::chrono::microseconds(pauseUs));
  }
}

}  // namespace

std::string injectionObstacle(pid_t pid) {
#if !defined(__x86_64__)
  (void)pid;
  return "system call injection is implemented for x86_64 only";
#else
  auto mode = seccompMode(pid);
  if (!mode.ok()) return mode.status().message();
  return *mode == 1 ? "seccomp strict mode" : "";
#endif
}

Result<Injector> Injector::attach(pid_t pid) {
  if (std::string why = injectionObstacle(pid); !why.empty())
    return failedPrecondition("cannot inject into pid " + std::to_string(pid) + ": " + why);
  LXMIG_ASSIGN_OR_RETURN(int mode, seccompMode(pid));
  Injector in(pid);
  LXMIG_ASSIGN_OR_RETURN(in.syscallInsn_, findSyscallInsn(pid));
  // Its filter is suspended while it is traced, for the injected calls.
  const long options = mode == 2 ? PTRACE_O_SUSPEND_SECCOMP : 0;
  if (::ptrace(PTRACE_SEIZE, pid, nullptr, options) != 0) {
    int e = errno;
    if (e == ESRCH) return notFound("pid " + std::to_string(pid) + " exited");
    if (options && e == EPERM)
      return failedPrecondition("cannot inject into pid " + std::to_string(pid) +
                                ": it runs under a seccomp filter, which the agent may not suspend (that needs "
                                "CAP_SYS_ADMIN and an agent not under seccomp itself)");
    return failedPrecondition("cannot inject into pid " + std::to_string(pid) + ": ptrace: " + std::strerror(e));
  }
  in.attached_ = true;
  if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0)
    return Status::fromErrno("ptrace interrupt pid", std::to_string(pid));
  for (;;) {
    auto waited = waitTracee(pid, "stop for ptrace");
    if (!waited.ok()) {
      in.attached_ = false;  // not stopped: nothing to restore; the tracer thread's end detaches it
      return waited.status();
    }
    const int ws = *waited;
    if (WIFEXITED(ws) || WIFSIGNALED(ws)) {
      in.attached_ = false;
      return notFound("pid " + std::to_string(pid) + " exited");
    }
    if (!WIFSTOPPED(ws)) continue;
    if ((ws >> 16) == PTRACE_EVENT_STOP) break;
    // A signal arrived first: keep it for the detach, stop there.
    in.pendingSignal_ = WSTOPSIG(ws);
    break;
  }
#if defined(__x86_64__)
  if (::ptrace(PTRACE_GETREGS, pid, nullptr, in.savedRegs_) != 0)
    return Status::fromErrno("ptrace getregs pid", std::to_string(pid));
#endif
  return in;
}

Injector::Injector(Injector&& o) noexcept
    : pid_(o.pid_),
      attached_(std::exchange(o.attached_, false)),
      syscallInsn_(o.syscallInsn_),
      pendingSignal_(o.pendingSignal_) {
  std::memcpy(savedRegs_, o.savedRegs_, sizeof savedRegs_);
}

Injector::~Injector() { (void)detach(); }

Result<long> Injector::syscall(long nr, std::array<uint64_t, 6> args) {
#if !defined(__x86_64__)
  (void)nr;
  (void)args;
  return failedPrecondition("system call injection is implemented for x86_64 only");
#else
  if (!attached_) return failedPrecondition("not attached to pid " + std::to_string(pid_));
  user_regs_struct r;
  std::memcpy(&r, savedRegs_, sizeof r);
  r.rip = syscallInsn_;
  r.rax = static_cast<uint64_t>(nr);
  r.orig_rax = static_cast<uint64_t>(-1);  // no syscall-restart handling of our own step
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.r10 = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  if (::ptrace(PTRACE_SETREGS, pid_, nullptr, &r) != 0)
    return Status::fromErrno("ptrace setregs pid", std::to_string(pid_));
  for (;;) {
    if (::ptrace(PTRACE_SINGLESTEP, pid_, nullptr, nullptr) != 0)
      return Status::fromErrno("ptrace singlestep pid", std::to_string(pid_));
    auto waited = waitTracee(pid_, "end an injected step");
    if (!waited.ok()) {
      // Not seen: the injected calls do not block. Let go with its own
      // registers unrestored is all that is left (the tracer's end).
      attached_ = false;
      return waited.status();
    }
    const int ws = *waited;
    if (WIFEXITED(ws) || WIFSIGNALED(ws)) {
      attached_ = false;
      return notFound("pid " + std::to_string(pid_) + " exited during injection");
    }
    if (!WIFSTOPPED(ws)) continue;
    if (WSTOPSIG(ws) == SIGTRAP && (ws >> 16) == 0) break;  // the step is done
    if ((ws >> 16) == 0) {
      // A signal arrived while stepping: suppress it now, deliver on detach.
      // A second different one is re-sent with tgkill then.
      if (pendingSignal_ && pendingSignal_ != WSTOPSIG(ws)) ::syscall(SYS_tgkill, pid_, pid_, WSTOPSIG(ws));
      else pendingSignal_ = WSTOPSIG(ws);
    }
    // Re-arm and step again: a signal stop happens before the instruction.
    user_regs_struct cur;
    if (::ptrace(PTRACE_GETREGS, pid_, nullptr, &cur) != 0)
      return Status::fromErrno("ptrace getregs pid", std::to_string(pid_));
    if (cur.rip != syscallInsn_) {
      // The instruction ran and a signal stop followed the trap.
      return static_cast<long>(cur.rax);
    }
  }
  user_regs_struct out;
  if (::ptrace(PTRACE_GETREGS, pid_, nullptr, &out) != 0)
    return Status::fromErrno("ptrace getregs pid", std::to_string(pid_));
  return static_cast<long>(out.rax);
#endif
}

Status Injector::detach() {
  if (!attached_) return okStatus();
  attached_ = false;
#if defined(__x86_64__)
  if (::ptrace(PTRACE_SETREGS, pid_, nullptr, savedRegs_) != 0) {
    Status st = Status::fromErrno("ptrace restore registers of pid", std::to_string(pid_));
    LXMIG_LOG(kError, kLog) << st.toString();
    (void)::ptrace(PTRACE_DETACH, pid_, nullptr, nullptr);
    return st;
  }
#endif
  if (::ptrace(PTRACE_DETACH, pid_, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(pendingSignal_))) != 0)
    return Status::fromErrno("ptrace detach pid", std::to_string(pid_));
  return okStatus();
}

namespace {

// USERFAULTFD_IOC_NEW on /dev/userfaultfd (Linux 6.1; newer than
// bookworm's headers): a userfaultfd for the caller's memory, with access
// decided when the device was opened.
constexpr unsigned long kUserfaultfdIocNew = _IO(0xAA, 0x00);

// A file descriptor of the target process, taken into this one.
Result<UniqueFd> take(int pidfd, long remote, pid_t pid) {
  UniqueFd local(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, static_cast<int>(remote), 0)));
  if (!local) return Status::fromErrno("pidfd_getfd from pid", std::to_string(pid));
  return local;
}

// The target's own userfaultfd() (root, or vm.unprivileged_userfaultfd=1).
// -errno from the target when the kernel refuses it.
Result<long> ownUserfaultfd(Injector& in) { return in.syscall(SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK}); }

// The same through /dev/userfaultfd, for a process that may not call
// userfaultfd() itself (not root, vm.unprivileged_userfaultfd=0): this
// process opens the device (root may) and passes it to the target over a
// socket pair the target makes (SCM_RIGHTS); the target asks the device
// for a userfaultfd of its own memory; the device goes again. Needs a page
// of scratch memory in the target, mapped and unmapped here. Returns the
// target's fd number of the new userfaultfd.
Result<long> deviceUserfaultfd(Injector& in, int pidfd, pid_t pid) {
  const std::string who = "pid " + std::to_string(pid);
  UniqueFd device(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (!device) return Status::fromErrno("open", "/dev/userfaultfd");
  LXMIG_ASSIGN_OR_RETURN(long page, in.syscall(SYS_mmap, {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                                          static_cast<uint64_t>(-1), 0}));
  if (page < 0 && page > -4096) return internalError("scratch page in " + who + ": " + std::strerror(int(-page)));
  const auto scratch = static_cast<uint64_t>(page);
  std::vector<long> opened;  // fds made in the target, closed again below
  auto run = [&]() -> Result<long> {
    // The socket pair, its fds written into the scratch page.
    LXMIG_ASSIGN_OR_RETURN(long r, in.syscall(SYS_socketpair, {AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, scratch}));
    if (r < 0) return internalError("socketpair in " + who + ": " + std::strerror(int(-r)));
    int sv[2];
    iovec local{sv, sizeof sv}, remote{reinterpret_cast<void*>(scratch), sizeof sv};
    if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) != sizeof sv) return Status::fromErrno("read", who);
    opened.insert(opened.end(), {sv[0], sv[1]});
    // The device over the pair: sent from here on our copy of one end ...
    LXMIG_ASSIGN_OR_RETURN(UniqueFd end, take(pidfd, sv[0], pid));
    char byte = 'u';
    iovec data{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr out{};
    out.msg_iov = &data;
    out.msg_iovlen = 1;
    out.msg_control = control;
    out.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&out);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    const int devFd = device.get();
    std::memcpy(CMSG_DATA(cm), &devFd, sizeof devFd);
    if (::sendmsg(end.get(), &out, 0) != 1) return Status::fromErrno("sendmsg to", who);
    // ... and received by the target on the other: a msghdr in its scratch
    // page, pointing at a byte and a control buffer there too.
    struct {
      msghdr hdr;
      iovec iov;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      char byte;
    } in_{};
    in_.iov = {reinterpret_cast<void*>(scratch + offsetof(decltype(in_), byte)), 1};
    in_.hdr.msg_iov = reinterpret_cast<iovec*>(scratch + offsetof(decltype(in_), iov));
    in_.hdr.msg_iovlen = 1;
    in_.hdr.msg_control = reinterpret_cast<void*>(scratch + offsetof(decltype(in_), control));
    in_.hdr.msg_controllen = sizeof in_.control;
    iovec w{&in_, sizeof in_}, rw{reinterpret_cast<void*>(scratch), sizeof in_};
    if (::process_vm_writev(pid, &w, 1, &rw, 1, 0) != sizeof in_) return Status::fromErrno("write", who);
    LXMIG_ASSIGN_OR_RETURN(r, in.syscall(SYS_recvmsg, {static_cast<uint64_t>(sv[1]), scratch, MSG_CMSG_CLOEXEC}));
    if (r != 1) return internalError("recvmsg in " + who + ": " + std::strerror(r < 0 ? int(-r) : EPROTO));
    iovec back{&in_, sizeof in_};
    if (::process_vm_readv(pid, &back, 1, &rw, 1, 0) != sizeof in_) return Status::fromErrno("read", who);
    const cmsghdr* got = reinterpret_cast<const cmsghdr*>(in_.control);
    if (got->cmsg_type != SCM_RIGHTS || got->cmsg_len != CMSG_LEN(sizeof(int)))
      return internalError("no descriptor arrived in " + who);
    int remoteDevice = -1;
    std::memcpy(&remoteDevice, CMSG_DATA(got), sizeof remoteDevice);
    opened.push_back(remoteDevice);
    // The target asks the device for a userfaultfd of its own memory.
    return in.syscall(SYS_ioctl, {static_cast<uint64_t>(remoteDevice), kUserfaultfdIocNew, O_CLOEXEC | O_NONBLOCK});
  };
  Result<long> uffd = run();
  for (long fd : opened) (void)in.syscall(SYS_close, {static_cast<uint64_t>(fd)});
  (void)in.syscall(SYS_munmap, {scratch, 4096});
  return uffd;
}

}  // namespace

std::string userfaultfdWay(pid_t pid) {
  auto st = readFile("/proc/" + std::to_string(pid) + "/status");
  if (st.ok())
    for (const auto& line : split(*st, '\n'))
      if (startsWith(line, "Uid:")) {
        auto f = split(line.substr(4), '\t');
        if (!f.empty() && trim(f[0]) == "0") return "userfaultfd()";
      }
  auto sysctl = readFile("/proc/sys/vm/unprivileged_userfaultfd");
  if (sysctl.ok() && trim(*sysctl) == "1") return "userfaultfd()";
  return "/dev/userfaultfd";
}

namespace {

Result<UniqueFd> stealIn(pid_t pid) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Status::fromErrno("pidfd_open pid", std::to_string(pid));
  LXMIG_ASSIGN_OR_RETURN(auto in, Injector::attach(pid));
  LXMIG_ASSIGN_OR_RETURN(long remote, ownUserfaultfd(in));
  if (remote == -EPERM) {
    // A process that may not make one itself (not root, and the global
    // sysctl left at 0): through the device instead.
    LXMIG_ASSIGN_OR_RETURN(remote, deviceUserfaultfd(in, pidfd.get(), pid));
  }
  if (remote < 0)
    return failedPrecondition("userfaultfd in pid " + std::to_string(pid) +
                              " failed: " + std::strerror(static_cast<int>(-remote)));
  auto local = take(pidfd.get(), remote, pid);
  auto closed = in.syscall(SYS_close, {static_cast<uint64_t>(remote)});
  LXMIG_RETURN_IF_ERROR(in.detach());
  LXMIG_RETURN_IF_ERROR(local.status());
  if (!closed.ok()) return closed.status();
  return local;
}

}  // namespace

Result<UniqueFd> stealUserfaultfd(pid_t pid) {
  // The tracer is a thread that ends right after: a process that did not
  // stop in time is let go by the kernel then (Injector::attach).
  Result<UniqueFd> out = internalError("userfaultfd of pid " + std::to_string(pid) + ": not taken");
  std::thread([&] { out = stealIn(pid); }).join();
  return out;
}

}  // namespace lxmig::tracking
