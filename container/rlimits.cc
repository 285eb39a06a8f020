#include "rlimits.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"

namespace lxmig::container {
namespace {

// The rows of /proc/PID/limits in resource order (fs/proc/base.c).
constexpr int kResources = 16;

Result<uint64_t> limitValue(std::string_view field) {
  if (field == "unlimited") return uint64_t{RLIM_INFINITY};
  uint64_t v = 0;
  if (field.empty() || !parseUint64(field, &v)) return invalidArgument("bad limit `" + std::string(field) + "`");
  return v;
}

// The filter: prlimit64 to the supervisor, everything else allowed. A
// process of another architecture's ABI cannot run here (x86-64 only).
Result<UniqueFd> installFilter() {
#if defined(__x86_64__)
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prlimit64, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (fd < 0) return failedPrecondition(std::string("seccomp user notification: ") + std::strerror(errno));
  return UniqueFd(static_cast<int>(fd));
#else
  return failedPrecondition("reading other processes' limits is implemented for x86-64 only");
#endif
}

// A prlimit64 read of another process, answered: the kernel's answer when
// it gives one, else /proc/PID/limits. -errno on failure.
int readLimit(pid_t pid, int resource, rlimit* out) {
  if (::syscall(SYS_prlimit64, pid, resource, nullptr, out) == 0) return 0;
  if (errno != EPERM) return -errno;
  auto text = readFile("/proc/" + std::to_string(pid) + "/limits");
  if (!text.ok()) return text.status().code() == Code::kNotFound ? -ESRCH : -EPERM;
  auto r = parseProcLimits(*text, resource);
  if (!r.ok()) return -EPERM;
  *out = *r;
  return 0;
}

void answer(int listener, const seccomp_notif& req) {
  seccomp_notif_resp resp{};
  resp.id = req.id;
  const auto pid = static_cast<pid_t>(req.data.args[0]);
  const auto resource = static_cast<int>(req.data.args[1]);
  const uint64_t newLimit = req.data.args[2], oldLimit = req.data.args[3];
  // Sets, reads of its own limits and odd calls: the kernel decides.
  if (newLimit != 0 || oldLimit == 0 || pid <= 0 || pid == static_cast<pid_t>(req.pid) || resource < 0 ||
      resource >= kResources) {
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  } else {
    rlimit lim{};
    int err = readLimit(pid, resource, &lim);
    // The caller may have died and its pid been reused: check before writing.
    if (err == 0 && ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) != 0) return;
    if (err == 0) {
      iovec local{&lim, sizeof lim}, remote{reinterpret_cast<void*>(oldLimit), sizeof lim};
      if (::process_vm_writev(static_cast<pid_t>(req.pid), &local, 1, &remote, 1, 0) != sizeof lim) err = -EFAULT;
    }
    resp.error = err;
    resp.val = 0;
  }
  (void)::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

}  // namespace

Result<rlimit> parseProcLimits(std::string_view text, int resource) {
  if (resource < 0 || resource >= kResources) return invalidArgument("no resource " + std::to_string(resource));
  auto lines = split(text, '\n');
  // A header, then one row per resource: a name padded to 26 columns, the
  // soft and the hard limit, the unit.
  if (lines.size() < static_cast<size_t>(resource) + 2) return invalidArgument("short /proc/PID/limits");
  std::string_view row = lines[static_cast<size_t>(resource) + 1];
  if (row.size() < 26 || !startsWith(row, "Max ")) return invalidArgument("unexpected /proc/PID/limits row");
  auto fields = split(row.substr(26), ' ');
  if (fields.size() < 2) return invalidArgument("unexpected /proc/PID/limits row");
  LXMIG_ASSIGN_OR_RETURN(uint64_t soft, limitValue(fields[0]));
  LXMIG_ASSIGN_OR_RETURN(uint64_t hard, limitValue(fields[1]));
  return rlimit{soft, hard};
}

Result<int> withRlimitReads(const std::function<int()>& fn) {
  // The supervisor starts before the filter: it is not filtered itself.
  std::atomic<int> listener{-1};
  std::atomic<bool> done{false};
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC));
  if (!wake) return Status::fromErrno("eventfd", "rlimit supervisor");
  std::thread supervisor([&] {
    while (!done && listener < 0) std::this_thread::yield();
    while (!done) {
      pollfd p[2] = {{listener, POLLIN, 0}, {wake.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
      if (p[1].revents) return;
      if (!(p[0].revents & POLLIN)) continue;
      seccomp_notif req{};
      if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) continue;  // the caller went away
      answer(listener, req);
    }
  });
  auto filter = installFilter();
  if (!filter.ok()) {
    done = true;
    uint64_t one = 1;
    (void)!::write(wake.get(), &one, sizeof one);
    supervisor.join();
    return filter.status();
  }
  listener = filter->get();
  const int rc = fn();
  done = true;
  uint64_t one = 1;
  (void)!::write(wake.get(), &one, sizeof one);
  supervisor.join();
  return rc;
}

}  // namespace lxmig::container
