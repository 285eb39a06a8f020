#include "lxmig/container/lxc_host.h"

#include <dirent.h>
#include <fcntl.h>
#include <lxc/lxccontainer.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <thread>

#include "cgroup_tree.h"
#include "criu_dump.h"
#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/container/dev_shm.h"
#include "lxmig/container/dev_tree.h"
#include "rlimits.h"

namespace lxmig::container {
namespace {

using Container = UniqueHandle<lxc_container, lxc_container_put>;

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
// lxmig-lxc (container/lxc_helper.cc): its exit code when liblxc's call
// failed (CRIU's logs say why); a dump or restore that takes longer than
// the limit is killed.
constexpr int kHelperCallFailed = 1;
constexpr int64_t kHelperTimeoutMs = 15 * 60 * 1000;
constexpr int kHelperPollMs = 100;
// Host directories every application container sees read-only; the rootfs
// has /bin, /lib, /lib64 and /sbin as links into /usr (merged /usr).
const char* const kSystemDirs[] = {"usr", "etc"};
const char* const kWritableDirs[] = {"tmp", "var", "run", "data", "dev", "proc", "sys", "usr", "etc", "opt"};

Result<Container> open(const std::string& lxcPath, const std::string& name) {
  Container c(::lxc_container_new(name.c_str(), lxcPath.c_str()));
  if (!c) return internalError("liblxc cannot open container `" + name + "` in " + lxcPath);
  return c;
}

// The first error liblxc logged for a container (its directory may be gone
// by the time anyone reads the log).
std::string lxcError(const std::string& containerDir) {
  auto log = readFile(containerDir + "/lxc.log");
  if (log.ok())
    for (const auto& line : split(*log, '\n'))
      if (auto at = line.find(" ERROR "); at != std::string::npos) return std::string(trim(line.substr(at + 7)));
  return "no error in " + containerDir + "/lxc.log";
}

// lxmig-lxc, installed next to lxmigd.
std::string helperPath() {
  auto dir = programDir();
  return dir.ok() ? *dir + "/lxmig-lxc" : "lxmig-lxc";
}

bool pureCgroup2() { return pathExists(std::string(kCgroupRoot) + "/cgroup.controllers"); }

// The first CRIU error of a log, for a one-line cause. CRIU's own errors
// read "Error (file.c:line): ..."; lines of the tools it runs ("Error: ipv4:
// Address already assigned" from `ip` while restoring lo) and the errors
// PLATFORM.md lists as harmless are only used when nothing else is there.
// The log is named where the engine keeps it: <state>/logs/<id>/ (the images
// directory is removed after a failure).
std::string criuError(const std::string& logPath) {
  auto text = readFile(logPath);
  if (!text.ok()) return "no CRIU log at " + logPath;
  static const char* const kHarmless[] = {
      "RLIMIT_NOFILE",           "iptables",         "ip6tables",   "-V failed",
      "cgroupd: recv req error", "already assigned", "File exists", "Unable to create tun"};
  std::string own, other;
  bool timedOut = false;
  for (const auto& line : split(*text, '\n')) {
    auto pos = line.find("Error");
    if (pos == std::string::npos) continue;
    bool harmless = false;
    for (const char* h : kHarmless) harmless |= line.find(h) != std::string::npos;
    if (harmless) continue;
    std::string cause(trim(line.substr(pos)));
    if (line.compare(pos, 7, "Error (") == 0) {
      // "Error (criu/files.c:1393): Can't open root" -> "Can't open root"
      auto close = cause.find("): ");
      if (close != std::string::npos) cause = cause.substr(close + 3);
      // CRIU's alarm (its --timeout, 10 s) interrupts what hung: that is
      // the error after it.
      if (startsWith(cause, "Timeout reached")) {
        timedOut = true;
        continue;
      }
      own = timedOut ? cause + " (interrupted by CRIU's timeout)" : cause;
      break;  // the first error is the cause; later ones are consequences
    }
    if (other.empty()) other = cause;
  }
  if (own.empty() && timedOut) own = "CRIU's timeout was reached";
  std::string kept = logPath;
  if (auto at = kept.rfind("/images/"); at != std::string::npos) kept.replace(at, 8, "/logs/");
  std::string cause = own.empty() ? other : own;
  if (cause.empty()) return "see " + kept;
  return cause + " (CRIU log: " + kept + ")";
}

std::vector<std::string> cgroupHierarchies() {
  std::vector<std::string> out;
  if (pureCgroup2()) return {kCgroupRoot};
  for (const auto& n : listDir(kCgroupRoot).value_or({})) {
    std::string p = std::string(kCgroupRoot) + "/" + n;
    if (pathExists(p + "/cgroup.procs")) out.push_back(p);
  }
  return out;
}

void rmdirDepthFirst(const std::string& path) {
  for (const auto& e : listDirEntries(path).value_or({}))
    if (e.type == DT_DIR) rmdirDepthFirst(path + "/" + e.name);
  ::rmdir(path.c_str());
}

// cgroup.procs files of a process's cgroups, one per hierarchy, found by
// matching /proc/PID/cgroup against the cgroup mounts in this process's
// mountinfo.
std::vector<std::string> cgroupProcsFiles(const std::string& pid = "self") {
  std::vector<std::string> out;
  auto cg = readFile("/proc/" + pid + "/cgroup");
  auto mi = readFile("/proc/self/mountinfo");
  if (!cg.ok() || !mi.ok()) return out;
  struct Mount {
    std::string point, fstype;
    std::vector<std::string> opts;
  };
  std::vector<Mount> mounts;
  for (const auto& line : split(*mi, '\n')) {
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    auto left = split(line.substr(0, sep), ' ');
    auto right = split(line.substr(sep + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    if (right[0] != "cgroup" && right[0] != "cgroup2") continue;
    mounts.push_back({left[4], right[0], split(right[2], ',')});
  }
  for (const auto& line : split(*cg, '\n')) {
    auto a = line.find(':');
    auto b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    for (const auto& m : mounts) {
      bool match = ctrls.empty() ? m.fstype == "cgroup2" : m.fstype == "cgroup";
      if (match && !ctrls.empty())
        for (const auto& c : split(ctrls, ',')) match &= std::find(m.opts.begin(), m.opts.end(), c) != m.opts.end();
      if (match) {
        out.push_back(m.point + (path == "/" ? "" : path) + "/cgroup.procs");
        break;
      }
    }
  }
  return out;
}

}  // namespace

LxcHost::LxcHost(std::string lxcPath, std::string cgroupParent)
    : lxcPath_(std::move(lxcPath)), cgroupParent_(std::move(cgroupParent)), ownCgroupProcs_(cgroupProcsFiles()) {}

void LxcHost::returnToOwnCgroups() const {
  std::string pid = std::to_string(::getpid());
  for (const auto& f : ownCgroupProcs_) {
    if (Status st = writeFile(f, pid); !st.ok()) {
      LXMIG_LOG(kWarn, "lxc") << "return to own cgroup: " << st.toString();
    }
  }
}

const char* runStateName(RunState s) {
  switch (s) {
    case RunState::kStopped:
      return "STOPPED";
    case RunState::kStarting:
      return "STARTING";
    case RunState::kRunning:
      return "RUNNING";
    case RunState::kStopping:
      return "STOPPING";
    case RunState::kAborting:
      return "ABORTING";
    case RunState::kFreezing:
      return "FREEZING";
    case RunState::kFrozen:
      return "FROZEN";
    case RunState::kThawed:
      return "THAWED";
    case RunState::kUnknown:
      return "UNKNOWN";
  }
  return "UNKNOWN";
}

// The two paths of an lxc.mount.entry (fstab syntax: blanks separate
// fields); returns the container path relative to its root.
static Result<std::string> mountEntryPaths(const std::string& host, const std::string& inside, const char* what) {
  const std::string both = "`" + host + ":" + inside + "`";
  if (Status st = checkAbsolutePath(host); !st.ok())
    return invalidArgument(std::string("bad ") + what + " " + both + ": " + st.message());
  if (Status st = checkAbsolutePath(inside); !st.ok() || inside == "/")
    return invalidArgument(std::string("bad ") + what + " " + both + ": " +
                           (st.ok() ? "not the container's root" : st.message()));
  if ((host + inside).find_first_of(" \t\\") != std::string::npos)
    return invalidArgument(std::string("bad ") + what + " " + both +
                           ": blanks and backslashes cannot be written to an LXC mount entry");
  return inside.substr(1);
}

Status LxcHost::define(const ContainerParams& p, bool keepRootfs) {
  if (defined(p.name)) return alreadyExists("container `" + p.name + "` already exists on this node");
  std::string root = rootfs(p.name);
  if (!keepRootfs) {
    for (const char* d : kWritableDirs) LXMIG_RETURN_IF_ERROR(makeDirs(root + "/" + d));
    ::chmod((root + "/tmp").c_str(), 01777);
    for (const char* l : {"bin", "lib", "lib64", "sbin"}) {
      std::string target = std::string("usr/") + l;
      std::string link = root + "/" + l;
      if (::symlink(target.c_str(), link.c_str()) != 0 && errno != EEXIST) return Status::fromErrno("symlink", link);
    }
  }
  // Every value goes through one door: a control character (a newline
  // would start a config line of the caller's choosing, e.g. a host hook)
  // refuses the whole config.
  LXMIG_RETURN_IF_ERROR(checkContainerName(p.name));
  std::string cfg;
  Status unsafe;
  auto add = [&](const std::string& k, const std::string& v) {
    if (Status st = checkPlainText(v, "value of " + k + " for `" + p.name + "`"); !st.ok() && unsafe.ok()) unsafe = st;
    cfg += k + " = " + v + "\n";
  };
  cfg += "# written by lxmigd; lxmig.json holds the container's spec\n";
  add("lxc.uts.name", p.name);
  add("lxc.rootfs.path", "dir:" + root);
  for (const char* d : kSystemDirs) add("lxc.mount.entry", std::string("/") + d + " " + d + " none ro,bind 0 0");
  for (const auto& b : p.binds) {
    struct stat st {};
    if (::stat(b.hostPath.c_str(), &st) != 0) return Status::fromErrno("bind source", b.hostPath);
    LXMIG_ASSIGN_OR_RETURN(std::string rel, mountEntryPaths(b.hostPath, b.containerPath, "bind"));
    add("lxc.mount.entry", b.hostPath + " " + rel + " none " + (b.readOnly ? "ro," : "") +
                               "bind,create=" + (S_ISDIR(st.st_mode) ? "dir" : "file") + " 0 0");
  }
  for (const auto& d : p.devices) {
    LXMIG_ASSIGN_OR_RETURN(std::string rel, mountEntryPaths(d.hostPath, d.containerPath, "device"));
    // The cgroup rule in the hierarchy that holds the devices controller.
    std::string rule = std::string(1, d.type) + " " + std::to_string(d.major) + ":" + std::to_string(d.minor) + " rwm";
    add(pathExists("/sys/fs/cgroup/devices") ? "lxc.cgroup.devices.allow" : "lxc.cgroup2.devices.allow", rule);
    add("lxc.mount.entry", d.hostPath + " " + rel + " none bind,create=file 0 0");
  }
  add("lxc.mount.entry", "tmpfs dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0");
  add("lxc.mount.entry", "mqueue dev/mqueue mqueue rw,nosuid,nodev,noexec,create=dir 0 0");
  add("lxc.mount.auto", "cgroup:mixed proc:mixed sys:ro");
  add("lxc.autodev", "1");
  // CRIU cannot dump consoles or ttys whose masters are outside
  // (PLATFORM.md); a devpts instance of the container's own, whose pairs
  // its processes open with both ends inside, moves (conformance pty_pair).
  add("lxc.tty.max", "0");
  add("lxc.pty.max", "16");
  add("lxc.console.path", "none");
  add("lxc.net.0.type", "veth");
  add("lxc.net.0.link", p.bridge);
  add("lxc.net.0.flags", "up");
  add("lxc.net.0.name", "eth0");
  add("lxc.net.0.hwaddr", p.hwaddr);
  add("lxc.net.0.ipv4.address", p.ip + "/" + std::to_string(p.prefixLen));
  for (const auto& a : p.extraIps) add("lxc.net.0.ipv4.address", a + "/" + std::to_string(p.prefixLen));
  add("lxc.net.0.ipv4.gateway", p.gateway);
  add("lxc.cgroup.dir.container", cgroupParent_ + "/payload." + p.name);
  add("lxc.cgroup.dir.monitor", cgroupParent_ + "/monitor." + p.name);
  for (const auto& e : p.env) add("lxc.environment", e);
  if (p.idmapSize > 0) {
    // A user namespace of its own: root inside is host id idmapBase. Its
    // writable area is owned by that id; the system directories stay the
    // host's (read-only, owned by ids it does not map: nobody inside).
    // liblxc mounts the rootfs outside /usr (its default is below it): a
    // restore inside the user namespace binds the host's /usr, which then
    // must not hold a mount (it would be locked there: EINVAL).
    const std::string map = "0 " + std::to_string(p.idmapBase) + " " + std::to_string(p.idmapSize);
    add("lxc.idmap", "u " + map);
    add("lxc.idmap", "g " + map);
    add("lxc.rootfs.mount", dir(p.name) + "/rootfs.mnt");
  }
  add("lxc.log.file", dir(p.name) + "/lxc.log");
  add("lxc.log.level", "WARN");
  LXMIG_RETURN_IF_ERROR(unsafe);
  LXMIG_RETURN_IF_ERROR(makeDirs(dir(p.name), 0700));
  if (p.idmapSize > 0) {
    LXMIG_RETURN_IF_ERROR(makeDirs(dir(p.name) + "/rootfs.mnt", 0700));
    // A new writable area (a migrated one arrives with its owners).
    if (!keepRootfs) {
      const uid_t owner = p.idmapBase;
      if (::chown(root.c_str(), owner, owner) != 0) return Status::fromErrno("chown", root);
      for (const char* d : kWritableDirs)
        if (::chown((root + "/" + d).c_str(), owner, owner) != 0) return Status::fromErrno("chown", root + "/" + d);
    }
  }
  return writeFileAtomic(dir(p.name) + "/config", cfg);
}

pid_t innerPid(pid_t hostPid) {
  auto status = readFile("/proc/" + std::to_string(hostPid) + "/status");
  if (!status.ok()) return 0;
  for (const auto& line : split(*status, '\n')) {
    if (!startsWith(line, "NSpid:")) continue;
    auto f = split(line.substr(6), '\t');
    uint64_t v = 0;
    if (!f.empty() && parseUint64(trim(f.back()), &v)) return static_cast<pid_t>(v);
  }
  return 0;
}

std::string processLabel(pid_t hostPid) {
  const pid_t inside = innerPid(hostPid);
  auto comm = readFile("/proc/" + std::to_string(hostPid) + "/comm");
  return "pid " + std::to_string(inside > 0 ? inside : hostPid) + " '" +
         (comm.ok() ? std::string(trim(*comm)) : std::string("?")) + "'";
}

bool LxcHost::defined(const std::string& name) const { return pathExists(dir(name) + "/config"); }

Status LxcHost::start(const std::string& name, const std::vector<std::string>& argv) {
  LXMIG_ASSIGN_OR_RETURN(auto c, open(lxcPath_, name));
  if (!c->is_defined(c.get())) return notFound("container `" + name + "` is not defined");
  c->want_daemonize(c.get(), true);
  // The monitor is forked without exec: without this it would keep the
  // agent's gRPC sockets open for the container's lifetime.
  c->want_close_all_fds(c.get(), true);
  LXMIG_RETURN_IF_ERROR(removeCgroups(name).withContext("start `" + name + "`"));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  bool started = c->start(c.get(), 0, args.data());
  returnToOwnCgroups();
  if (!started) return internalError("liblxc failed to start `" + name + "`: " + lxcError(dir(name)));
  for (int i = 0; i < 100 && c->state(c.get()) != std::string("RUNNING"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return okStatus();
}

RunState LxcHost::state(const std::string& name) const {
  auto c = open(lxcPath_, name);
  if (!c.ok() || !(*c)->is_defined(c->get())) return RunState::kUnknown;
  std::string s = (*c)->state(c->get());
  if (s == "RUNNING") return frozen(name) ? RunState::kFrozen : RunState::kRunning;
  if (s == "STOPPED") return RunState::kStopped;
  if (s == "FROZEN") return RunState::kFrozen;
  if (s == "STARTING") return RunState::kStarting;
  if (s == "STOPPING") return RunState::kStopping;
  if (s == "FREEZING") return RunState::kFreezing;
  return RunState::kUnknown;
}

int LxcHost::initPid(const std::string& name) const {
  auto c = open(lxcPath_, name);
  if (!c.ok()) return -1;
  return (*c)->init_pid(c->get());
}

uint64_t LxcHost::memoryBytes(const std::string& name) const {
  uint64_t sum = 0;
  for (const char* kind : {"/payload.", "/held."}) {
    std::string rel = "/" + cgroupParent_ + kind + name;
    std::string p = pureCgroup2() ? std::string(kCgroupRoot) + rel + "/memory.current"
                                  : std::string(kCgroupRoot) + "/memory" + rel + "/memory.usage_in_bytes";
    auto t = readFile(p);
    uint64_t v = 0;
    if (t.ok() && parseUint64(trim(*t), &v)) sum += v;
  }
  return sum;
}

std::string LxcHost::heldMemoryDir(const std::string& name) const {
  return std::string(kCgroupRoot) + (pureCgroup2() ? "" : "/memory") + "/" + cgroupParent_ + "/held." + name;
}

Result<UniqueFd> LxcHost::heldMemoryCgroup(const std::string& name) const {
  const std::string d = heldMemoryDir(name);
  if (pureCgroup2())
    LXMIG_RETURN_IF_ERROR(
        enableControllerDown(kCgroupRoot, cgroupParent_, "memory").withContext("held memory cgroup of `" + name + "`"));
  LXMIG_RETURN_IF_ERROR(makeDirs(d, 0755).withContext("held memory cgroup of `" + name + "`"));
  UniqueFd fd(::open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::fromErrno("open", d + "/cgroup.procs");
  return fd;
}

void LxcHost::removeHeldMemoryCgroup(const std::string& name) const { ::rmdir(heldMemoryDir(name).c_str()); }

uint64_t LxcHost::cpuUsageNs(const std::string& name) const {
  std::string rel = "/" + cgroupParent_ + "/payload." + name;
  uint64_t v = 0;
  if (pureCgroup2()) {
    // cpu.stat: "usage_usec N" on its first line.
    auto t = readFile(std::string(kCgroupRoot) + rel + "/cpu.stat");
    if (!t.ok()) return 0;
    for (const auto& line : split(*t, '\n'))
      if (startsWith(line, "usage_usec ") && parseUint64(trim(line.substr(11)), &v)) return v * 1000;
    return 0;
  }
  auto t = readFile(std::string(kCgroupRoot) + "/cpuacct" + rel + "/cpuacct.usage");
  if (t.ok()) parseUint64(trim(*t), &v);
  return v;
}

std::string LxcHost::freezerPath(const std::string& name) const {
  std::string rel = "/" + cgroupParent_ + "/payload." + name;
  if (pureCgroup2()) return std::string(kCgroupRoot) + rel + "/cgroup.freeze";
  return std::string(kCgroupRoot) + "/freezer" + rel + "/freezer.state";
}

bool LxcHost::frozen(const std::string& name) const {
  auto t = readFile(freezerPath(name));
  if (!t.ok()) return false;
  std::string_view v = trim(*t);
  return v == "FROZEN" || v == "1";
}

// A task of the container inside vfork(), waiting for its child to exec or
// exit: uninterruptible ("D" in kernel_clone), so the freezer cannot stop it
// while the child is frozen, and CRIU cannot seize it ("Unseizable
// non-zombie ... state D"; e.g. dash runs each command with vfork).
bool LxcHost::vforkWaiting(const std::string& name) const {
  for (pid_t p : pids(name).value_or(std::vector<pid_t>{})) {
    const std::string dir = "/proc/" + std::to_string(p);
    auto stat = readFile(dir + "/stat");
    if (!stat.ok()) continue;
    auto close = stat->rfind(')');
    if (close == std::string::npos || close + 2 >= stat->size() || (*stat)[close + 2] != 'D') continue;
    if (trim(readFile(dir + "/wchan").value_or("")) == "kernel_clone") return true;
  }
  return false;
}

Status LxcHost::freeze(const std::string& name, int timeoutMs) {
  std::string p = freezerPath(name);
  bool v2 = pureCgroup2();
  LXMIG_RETURN_IF_ERROR(writeFile(p, v2 ? "1" : "FROZEN"));
  int64_t deadline = monotonicNs() + int64_t{timeoutMs} * 1000000;
  int64_t since = monotonicNs();
  for (;;) {
    bool done = false;
    if (v2) {
      auto ev = readFile(p.substr(0, p.rfind('/')) + "/cgroup.events");
      done = ev.ok() && ev->find("frozen 1") != std::string::npos;
    } else {
      auto st = readFile(p);
      done = st.ok() && trim(*st) == "FROZEN";
    }
    // Caught in the middle of a vfork (frozen or still freezing for 2 ms):
    // thawed for a moment, the child execs and the parent goes on; then
    // frozen again.
    if ((done || monotonicNs() - since > 2000000) && vforkWaiting(name)) {
      LXMIG_RETURN_IF_ERROR(thaw(name));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      LXMIG_RETURN_IF_ERROR(writeFile(p, v2 ? "1" : "FROZEN"));
      since = monotonicNs();
      done = false;
    }
    if (done) return okStatus();
    if (monotonicNs() > deadline) {
      (void)thaw(name);
      return unavailable("container `" + name + "` did not freeze within " + std::to_string(timeoutMs) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

Status LxcHost::thaw(const std::string& name) { return writeFile(freezerPath(name), pureCgroup2() ? "0" : "THAWED"); }

Status LxcHost::dump(const std::string& name, const std::string& imagesDir, int discardPages, const CallLimits& limits,
                     const KeptOut& out) {
  if (!defined(name)) return notFound("container `" + name + "` is not defined");
  if (!frozen(name)) return failedPrecondition("container `" + name + "` must be frozen before dump");
  LXMIG_RETURN_IF_ERROR(makeDirs(imagesDir, 0700));
  // CRIU numbers page files 1, 2, ... as it dumps the tasks and the memfd
  // files and shared anonymous memory they use, and SysV segments last
  // (migration::PreCopy::pageFilesBeforeSysv counts the former).
  for (int k = 1; k <= discardPages; ++k) {
    std::string l = imagesDir + "/pages-" + std::to_string(k) + ".img";
    if (::symlink("/dev/null", l.c_str()) != 0) return Status::fromErrno("symlink", l);
  }
  CriuDumpPlan plan;
  plan.imagesDir = imagesDir;
  plan.init = initPid(name);
  if (plan.init <= 0) return failedPrecondition("container `" + name + "` has no init to dump");
  LXMIG_ASSIGN_OR_RETURN(plan.initCgroups, readFile("/proc/" + std::to_string(plan.init) + "/cgroup"));
  plan.payload = "/" + cgroupParent_ + "/payload." + name;
  plan.unified = pureCgroup2();
  LXMIG_ASSIGN_OR_RETURN(plan.config, readFile(dir(name) + "/config"));
  auto args = criuDumpArgs(plan);
  if (!args.ok()) return args.status().withContext("dump `" + name + "`");
  // Post-mortem help: LXMIG_CRIU_LOG_LEVEL=4 in the agent's environment.
  if (const char* v = std::getenv("LXMIG_CRIU_LOG_LEVEL"); v && v[0] >= '0' && v[0] <= '4' && v[1] == '\0')
    args->push_back(std::string("-v") + v);
  if (out.inode != 0) args->insert(args->end(), {"--external", "net[" + std::to_string(out.inode) + "]:" + kNetnsKey});
  if (out.devShm) args->insert(args->end(), {"--external", std::string("mnt[/dev/shm]:") + kDevShmKey});
  if (out.dev) args->insert(args->end(), {"--external", std::string("mnt[/dev]:") + kDevKey});
  // CRIU (the wrapper in PATH, as liblxc ran it) with the rlimits shim
  // (rlimits.h) preloaded.
  auto shim = rlimitShimPath();
  if (!shim.ok()) return shim.status().withContext("dump `" + name + "`");
  args->insert(args->begin(), "criu");
  std::vector<std::string> env = {"LD_PRELOAD=" + *shim};
  if (!out.heldPages.empty()) env.push_back("LXMIG_CRIU_HELD=" + out.heldPages);
  LXMIG_ASSIGN_OR_RETURN(int r, runTool("dump", name, *args, std::move(env), limits));
  if (r != 0) return internalError("CRIU dump of `" + name + "` failed: " + criuError(imagesDir + "/dump.log"));
  return okStatus();
}

// liblxc's calls that fork CRIU run in lxmig-lxc, a fresh process: liblxc's
// restore forks the container's monitor from its caller and, unlike start,
// leaves every inherited fd open in it (called in the agent, the monitor
// kept the agent's listening sockets, audit database and data links for
// the container's lifetime); each call carries its CRIU options in its own
// environment (liblxc has no field for them), so calls for different
// containers run at once; and a dump may read the limits of processes of
// any uid (rlimits.h). Returns the helper's exit code: 0, or
// kHelperCallFailed when liblxc's call failed.
Status LxcHost::setVethPair(const std::string& name, const std::string& hostVeth) {
  LXMIG_RETURN_IF_ERROR(checkPlainText(hostVeth, "host interface of `" + name + "`", 15));
  if (hostVeth.empty() || hostVeth.find_first_of(" /=") != std::string::npos)
    return invalidArgument("bad host interface name `" + hostVeth + "` for `" + name + "`");
  const std::string path = dir(name) + "/config";
  LXMIG_ASSIGN_OR_RETURN(std::string cfg, readFile(path));
  std::string out;
  for (const auto& line : split(cfg, '\n'))
    if (!startsWith(line, "lxc.net.0.veth.pair")) out += line + "\n";
  out += "lxc.net.0.veth.pair = " + hostVeth + "\n";
  return writeFileAtomic(path, out);
}

Result<int> LxcHost::runHelper(const std::string& verb, const std::string& name, const std::string& imagesDir,
                               std::vector<std::string> env, const CallLimits& limits) {
  return runHelperArgs(verb, name, {lxcPath_, name, imagesDir}, std::move(env), limits);
}

Result<int> LxcHost::runHelperArgs(const std::string& verb, const std::string& name,
                                   const std::vector<std::string>& args, std::vector<std::string> env,
                                   const CallLimits& limits) {
  const std::string helper = helperPath();
  if (!pathExists(helper))
    return failedPrecondition(verb + " `" + name + "`: " + helper + " is missing (install lxmig-lxc next to lxmigd)");
  std::vector<std::string> argv = {helper, verb};
  argv.insert(argv.end(), args.begin(), args.end());
  return runTool(verb, name, argv, std::move(env), limits);
}

Result<int> LxcHost::runTool(const std::string& verb, const std::string& name, const std::vector<std::string>& argv,
                             std::vector<std::string> env, const CallLimits& limits) {
  SpawnOptions so;
  so.stderrPath = dir(name) + "/" + verb + "-helper.log";
  so.extraEnv = std::move(env);
  auto child = spawn(argv, so);
  if (!child.ok()) return child.status().withContext(verb + " `" + name + "`");
  // Polled, so that an abort from another thread stops it at once.
  const int64_t deadline = monotonicNs() + std::min<int64_t>(limits.timeoutMs, kHelperTimeoutMs) * 1000000;
  Result<int> rc = deadlineExceeded("");
  for (;;) {
    rc = child->wait(kHelperPollMs);
    if (rc.ok() || rc.status().code() != Code::kDeadlineExceeded) break;
    const bool cancelled = limits.cancel && limits.cancel->load();
    if (!cancelled && monotonicNs() < deadline) continue;
    // liblxc's fork of the helper leads a session of its own, which holds
    // CRIU. After a restore the cgroups hold the monitor and the tasks
    // restored so far; any other verb works on a container's (or a kept
    // container's) running tasks, which must live on.
    const bool restoring = verb == "restore";
    killHelperSessions(argv);
    (void)::kill(-child->pid(), SIGKILL);
    if (restoring) killCgroupTasks(name);
    (void)child->wait();
    if (restoring) killCgroupTasks(name);  // what CRIU forked while it was killed
    if (cancelled) return Status(Code::kCancelled, verb + " of `" + name + "` cancelled (the migration was aborted)");
    return deadlineExceeded(verb + " of `" + name + "` took longer than " + std::to_string(limits.timeoutMs / 1000) +
                            " s: killed");
  }
  if (!rc.ok()) return rc.status().withContext(verb + " `" + name + "`");
  if (*rc != 0 && *rc != kHelperCallFailed) {
    auto log = readFile(so.stderrPath);
    auto lines = log.ok() ? split(*log, '\n') : std::vector<std::string>{};
    return internalError(argv[0].substr(argv[0].rfind('/') + 1) + " " + verb + " of `" + name + "` exited with " +
                         std::to_string(*rc) + (lines.empty() ? "" : ": " + lines.back()));
  }
  return *rc;
}

Status LxcHost::installInit(const std::string& name) {
  if (!defined(name)) return notFound("container `" + name + "` is not defined");
  auto dir = programDir();
  if (!dir.ok()) return dir.status().withContext("lxmig-init (install it next to lxmigd)");
  auto bytes = readFile(*dir + "/lxmig-init");
  if (!bytes.ok()) return bytes.status().withContext("lxmig-init (install it next to lxmigd)");
  // The rootfs was just made by define(): nothing of a payload is in it yet.
  std::string to = rootfs(name) + kInitPath;
  return writeFileAtomic(to, *bytes, 0755);
}

std::string LxcHost::execError(const std::string& name) const {
  // The container's writable area: opened without following a link, the
  // file as well (a container may have put anything there).
  UniqueFd root(::open(rootfs(name).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return "";
  UniqueFd f(::openat(root.get(), kExecErrorPath + 1, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (!f || ::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  char buf[512];
  ssize_t n = ::read(f.get(), buf, sizeof buf);
  std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return text;
}

Status LxcHost::dumpTree(pid_t root, const std::string& name, const std::string& imagesDir, bool sysv) {
  LXMIG_RETURN_IF_ERROR(makeDirs(imagesDir, 0700));
  std::vector<std::string> args = {std::to_string(root), imagesDir};
  if (sysv) args.push_back("--sysv");
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("dump-tree", name, args, {}));
  if (r != 0)
    return internalError("CRIU dump of pid " + std::to_string(root) + " failed: " + criuError(imagesDir + "/dump.log"));
  return okStatus();
}

// Where CRIU lives when it is not under /usr (the test bed's private CRIU in
// /opt/lxmig): the directory two levels above the `criu` found in PATH.
// "-" when it is under /usr, which every container sees already.
static std::string criuHome() {
  const char* path = std::getenv("PATH");
  for (const auto& d : split(path ? path : "/usr/sbin:/usr/bin", ':')) {
    if (d.empty() || d[0] != '/' || !pathExists(d + "/criu")) continue;
    if (startsWith(d, "/usr/")) return "-";
    std::string parent = d.substr(0, d.rfind('/'));
    return parent.empty() ? "-" : parent;
  }
  return "-";
}

// CRIU's environment for a dump or restore of System V mappings whose
// objects are carried outside the images (lxmig's merge patch).
static std::vector<std::string> sysvOutsideEnv(bool yes) {
  return yes ? std::vector<std::string>{"LXMIG_CRIU_SYSV_OUTSIDE=1"} : std::vector<std::string>{};
}

Status LxcHost::restoreInto(const std::string& name, const std::string& imagesDir,
                            const std::vector<HandedUnixSocket>& handed, bool sysvOutside) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  // CRIU gives restored tasks a time namespace of their own when the images
  // have one; the container's processes share its init's (a nested one
  // could not be dumped again).
  for (const auto& f : listDir(imagesDir).value_or({}))
    if (startsWith(f, "timens-")) ::unlink((imagesDir + "/" + f).c_str());
  std::vector<std::string> args = {std::to_string(init), imagesDir, criuHome()};
  for (const auto& h : handed)
    args.push_back("unix:" + std::to_string(h.pid) + ":" + std::to_string(h.fd) + ":" + std::to_string(h.inode));
  for (const auto& f : cgroupProcsFiles(std::to_string(init))) args.push_back(f);
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("restore-into", name, args, sysvOutsideEnv(sysvOutside)));
  if (r != 0) return internalError("CRIU restore into `" + name + "` failed: " + criuError(imagesDir + "/restore.log"));
  return okStatus();
}

Status LxcHost::dumpIn(const std::string& name, pid_t innerRoot, const std::string& imagesDir,
                       const std::vector<HandedUnixSocket>& handed, bool sysvOutside) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  LXMIG_RETURN_IF_ERROR(makeDirs(imagesDir, 0700));
  std::vector<std::string> args = {std::to_string(init), std::to_string(innerRoot), imagesDir, criuHome()};
  for (const auto& h : handed) args.push_back("unix:" + std::to_string(h.inode));
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("dump-in", name, args, sysvOutsideEnv(sysvOutside)));
  if (r != 0)
    return internalError("CRIU dump of pid " + std::to_string(innerRoot) + " in `" + name +
                         "` failed: " + criuError(imagesDir + "/dump.log"));
  return okStatus();
}

Status LxcHost::copyIpc(const std::string& from, const std::string& into, const std::string& listPath) {
  const int src = initPid(from), dst = initPid(into);
  if (src <= 0) return failedPrecondition("container `" + from + "` is not running");
  if (dst <= 0) return failedPrecondition("container `" + into + "` is not running");
  LXMIG_ASSIGN_OR_RETURN(int r,
                         runHelperArgs("copy-ipc", from, {std::to_string(src), std::to_string(dst), listPath}, {}));
  if (r == 0) return okStatus();
  // The helper's one line says which object and why.
  std::string why = "see " + dir(from) + "/copy-ipc-helper.log";
  for (const auto& line : split(readFileHead(dir(from) + "/copy-ipc-helper.log", 4096).value_or(""), '\n'))
    if (startsWith(line, "lxmig-lxc: ")) why = line.substr(11);
  const std::string what = "copying the System V objects of `" + from + "` into `" + into + "`: " + why;
  return r == 6 ? failedPrecondition(what) : internalError(what);
}

Status LxcHost::dropIpc(const std::string& name, const std::string& listPath) {
  const int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("drop-ipc", name, {std::to_string(init), listPath}, {}));
  if (r != 0) return internalError("removing the copied System V objects from `" + name + "` failed");
  return okStatus();
}

Status LxcHost::setLastPid(const std::string& name, pid_t last) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("last-pid", name, {std::to_string(init), std::to_string(last)}, {}));
  if (r != 0) return internalError("setting the last pid of `" + name + "` failed");
  return okStatus();
}

Status LxcHost::bindIn(const std::string& name, const Bind& b, bool file) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.hostPath).withContext("bind source"));
  LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.containerPath).withContext("bind target"));
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("bind-in", name,
                                              {std::to_string(init), b.hostPath, b.containerPath,
                                               b.readOnly ? "ro" : "rw", file ? "file" : "dir"},
                                              {}));
  if (r != 0) return internalError("bind " + b.hostPath + " at " + b.containerPath + " in `" + name + "` failed");
  return okStatus();
}

Status LxcHost::unbindIn(const std::string& name, const std::string& containerPath) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  LXMIG_RETURN_IF_ERROR(checkAbsolutePath(containerPath).withContext("bind target"));
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("unbind-in", name, {std::to_string(init), containerPath}, {}));
  if (r != 0) return internalError("unmount " + containerPath + " in `" + name + "` failed");
  return okStatus();
}

std::string LxcHost::devicesCgroup(const std::string& name) const {
  return pureCgroup2() ? "" : std::string(kCgroupRoot) + "/devices/" + cgroupParent_ + "/payload." + name;
}

bool LxcHost::canAllowDevices(const std::string& name) const {
  const std::string dir = devicesCgroup(name);
  return !dir.empty() && pathExists(dir);
}

Status LxcHost::allowDevice(const std::string& name, const DeviceParam& d, bool allow) {
  const std::string dir = devicesCgroup(name);
  if (!canAllowDevices(name))
    return unimplemented("adding a device to a running container needs cgroup v1's devices controller (" + dir +
                         " is missing)");
  const std::string rule =
      std::string(1, d.type) + " " + std::to_string(d.major) + ":" + std::to_string(d.minor) + " rwm\n";
  return writeFile(dir + (allow ? "/devices.allow" : "/devices.deny"), rule);
}

Status LxcHost::joinTreeIpc(const std::string& name, pid_t treeRoot, const std::vector<uint64_t>& keepShmIds) {
  int init = initPid(name);
  if (init <= 0) return failedPrecondition("container `" + name + "` is not running");
  auto nsOf = [](pid_t pid) {
    char buf[64];
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/ns/ipc").c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  };
  const std::string tree = nsOf(treeRoot);
  if (tree.empty()) return notFound("the restored tree (pid " + std::to_string(treeRoot) + ") is gone");
  if (::kill(init, SIGUSR1) != 0) return Status::fromErrno("signal the init of", name);
  for (int i = 0; nsOf(init) != tree; ++i) {
    if (i >= 200) return deadlineExceeded("the init of `" + name + "` did not join the tree's IPC namespace in 2 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::string> args = {std::to_string(init)};
  for (uint64_t id : keepShmIds) args.push_back(std::to_string(id));
  LXMIG_ASSIGN_OR_RETURN(int r, runHelperArgs("prune-shm", name, args, {}));
  if (r != 0) return internalError("removing the host's System V segments from `" + name + "` failed");
  return okStatus();
}

Status LxcHost::continueAll(const std::string& name) {
  LXMIG_ASSIGN_OR_RETURN(auto all, pids(name));
  const int init = initPid(name);
  for (pid_t p : all)
    if (p != init && ::kill(p, SIGCONT) != 0 && errno != ESRCH)
      return Status::fromErrno("continue pid", std::to_string(p));
  return okStatus();
}

Result<std::vector<pid_t>> LxcHost::pids(const std::string& name) const {
  std::string p = freezerPath(name);
  p = p.substr(0, p.rfind('/')) + "/cgroup.procs";
  auto text = readFile(p);
  if (!text.ok()) return notFound("container `" + name + "` has no cgroup (not running?)");
  std::vector<pid_t> out;
  for (const auto& l : split(*text, '\n')) out.push_back(static_cast<pid_t>(std::stol(l)));
  return out;
}

Result<Child> LxcHost::spawnLazyPages(const std::string& dir) {
  ::unlink((dir + "/lazy-pages.socket").c_str());
  SpawnOptions so;
  so.stderrPath = dir + "/lazy-pages.out";
  std::vector<std::string> argv = {"criu", "lazy-pages", "-D", dir, "-o", "lazy-pages.log"};
  if (const char* v = std::getenv("LXMIG_CRIU_LOG_LEVEL")) argv.push_back(std::string("-v") + v);
  return spawn(argv, so);
}

Status LxcHost::awaitLazyPages(const std::string& dir, Child& daemon) {
  const std::string sock = dir + "/lazy-pages.socket";
  for (int i = 0; i < 2000; ++i) {
    if (pathExists(sock)) return okStatus();
    auto done = daemon.wait(0);
    if (done.ok())
      return internalError("criu lazy-pages exited at once (" + std::to_string(*done) +
                           "): " + criuError(dir + "/lazy-pages.log"));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return unavailable("criu lazy-pages did not open its socket in " + dir + " within 1 s");
}

Result<Child> LxcHost::startLazyPages(const std::string& dir) {
  LXMIG_ASSIGN_OR_RETURN(Child c, spawnLazyPages(dir));
  LXMIG_RETURN_IF_ERROR(awaitLazyPages(dir, c));
  return c;
}

Status LxcHost::restore(const std::string& name, const std::string& imagesDir, bool lazy, const CallLimits& limits,
                        const KeptOut& out) {
  if (!defined(name)) return notFound("container `" + name + "` is not defined");
  // Leftovers of an earlier copy of this name would make liblxc fail. The
  // held memory cgroup is this copy's (its shared memory is charged there).
  LXMIG_RETURN_IF_ERROR(removeCgroups(name, /*keepHeld=*/true).withContext("restore `" + name + "`"));
  // liblxc passes --cgroup-root for v1 controllers only; without a default
  // the tasks land in the source's cgroup2 path (PLATFORM.md).
  std::string opts = "--cgroup-root /" + cgroupParent_ + "/payload." + name;
  if (lazy) opts += " --lazy-pages";
  // Post-mortem help: LXMIG_CRIU_LOG_LEVEL=4 in the agent's environment.
  if (const char* v = std::getenv("LXMIG_CRIU_LOG_LEVEL")) opts += std::string(" -v") + v;
  // The wrapper splits the options at blanks: the prepared directory's path
  // is lxmigd's own (images directory and migration id), never blank.
  if (!out.devShmPath.empty()) opts += std::string(" --external mnt[") + kDevShmKey + "]:" + out.devShmPath;
  if (!out.devPath.empty()) opts += std::string(" --external mnt[") + kDevKey + "]:" + out.devPath;
  std::vector<std::string> env = {"LXMIG_CRIU_RESTORE_OPTS=" + opts};
  if (!out.path.empty()) {
    // The criu wrapper opens the namespace and passes it as --inherit-fd
    // (liblxc closes what the helper would hand down); liblxc names the
    // host end from the config, and CRIU puts that end on the bridge.
    LXMIG_RETURN_IF_ERROR(setVethPair(name, out.hostVeth));
    env.push_back("LXMIG_CRIU_NETNS=" + out.path);
  }
  if (!out.heldShmem.empty()) {
    // SHMID=PATH words for the criu wrapper: the agent's own paths, never blank.
    std::string held;
    for (const auto& [shmid, path] : out.heldShmem)
      held += (held.empty() ? "" : " ") + std::to_string(shmid) + "=" + path;
    env.push_back("LXMIG_CRIU_SHMEM=" + held);
  }
  auto rc = runHelper("restore", name, imagesDir, std::move(env), limits);
  if (!rc.ok()) {
    (void)removeCgroups(name);
    return rc.status();
  }
  if (*rc != 0) {
    (void)removeCgroups(name);
    if (!pathExists(imagesDir + "/restore.log")) {
      // liblxc gave up before CRIU ran; its log says why. Keep it with the
      // images so the engine files it under <state>/logs/<id>/.
      if (auto log = readFile(dir(name) + "/lxc.log"); log.ok()) (void)writeFile(imagesDir + "/lxc.log", *log);
      return internalError("liblxc restore of `" + name + "` failed before CRIU ran: " + lxcError(dir(name)));
    }
    return internalError("CRIU restore of `" + name + "` failed: " + criuError(imagesDir + "/restore.log"));
  }
  return okStatus();
}

Status LxcHost::stop(const std::string& name) {
  auto c = open(lxcPath_, name);
  if (!c.ok() || !(*c)->is_defined(c->get())) return okStatus();
  // Cut the container off the bridge first. Its TCP sockets outlive their
  // processes as orphans that keep retrying (for minutes when the peer's
  // packets are dropped), and they keep the network namespace, its address
  // and its MAC alive on the bridge: a later container with the same
  // address would share the wire with that ghost. Without its veth the
  // ghost namespace reaches nobody; and a stopped source sends no FIN or
  // RST on behalf of connections that live on elsewhere.
  if (int pid = initPid(name); pid > 0) {
    auto links = runCommand({"nsenter", "-t", std::to_string(pid), "-n", "ip", "-o", "link", "show"});
    if (links.ok() && links->exitCode == 0)
      for (const auto& l : split(links->out, '\n')) {
        // "2: eth0@if41: <BROADCAST,..." -> eth0
        auto colon = l.find(": ");
        if (colon == std::string::npos) continue;
        std::string dev = l.substr(colon + 2, l.find_first_of("@:", colon + 2) - colon - 2);
        if (dev.empty() || dev == "lo") continue;
        (void)runCommand({"nsenter", "-t", std::to_string(pid), "-n", "ip", "link", "del", dev});
      }
  }
  if (frozen(name)) {
    // Kill while frozen, then thaw: the tasks die on their way back to user
    // space, so a frozen source never runs again once its copy is committed.
    std::string rel = "/" + cgroupParent_ + "/payload." + name;
    for (const auto& h : cgroupHierarchies()) {
      if (h.find("freezer") == std::string::npos && !pureCgroup2()) continue;
      auto procs = readFile(h + rel + "/cgroup.procs");
      if (!procs.ok()) continue;
      for (const auto& l : split(*procs, '\n')) {
        uint64_t pid = 0;
        if (parseUint64(trim(l), &pid) && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
      }
    }
    (void)thaw(name);
  }
  if ((*c)->is_running(c->get())) {
    if (!(*c)->stop(c->get())) return internalError("liblxc failed to stop `" + name + "`");
    if (!(*c)->wait(c->get(), "STOPPED", 10)) return internalError("`" + name + "` did not stop within 10 s");
  }
  return okStatus();
}

namespace {

// The session of a process (/proc/PID/stat), 0 when it is gone.
pid_t sessionOf(const std::string& pid) {
  auto stat = readFile("/proc/" + pid + "/stat");
  if (!stat.ok()) return 0;
  auto close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  auto f = split(stat->substr(close + 2), ' ');  // state ppid pgrp session ...
  uint64_t sid = 0;
  return f.size() > 3 && parseUint64(f[3], &sid) ? static_cast<pid_t>(sid) : 0;
}

}  // namespace

void LxcHost::killHelperSessions(const std::vector<std::string>& helperArgv) {
  // The helper (spawn's setsid) and liblxc's fork of it (setsid again)
  // lead sessions that hold CRIU, which lives outside the container's
  // cgroups; all carry the helper's command line.
  std::set<pid_t> sessions;
  auto procs = listDir("/proc").value_or({});
  for (const auto& p : procs) {
    auto argv = split(readFile("/proc/" + p + "/cmdline").value_or(""), '\0');
    if (argv.size() >= helperArgv.size() && std::equal(helperArgv.begin(), helperArgv.end(), argv.begin()))
      if (pid_t sid = sessionOf(p); sid > 1) sessions.insert(sid);
  }
  const pid_t self = ::getpid();
  for (const auto& p : procs) {
    uint64_t pid = 0;
    if (!sessions.empty() && parseUint64(p, &pid) && static_cast<pid_t>(pid) != self && sessions.count(sessionOf(p)))
      ::kill(static_cast<pid_t>(pid), SIGKILL);
  }
}

void LxcHost::killRestoreLeftovers(const std::string& name) {
  killHelperSessions({helperPath(), "restore", lxcPath_, name});
  killCgroupTasks(name);
}

void LxcHost::killCgroupTasks(const std::string& name) {
  for (const auto& h : cgroupHierarchies())
    for (const char* kind : {"/payload.", "/monitor."}) {
      const std::string top = h + "/" + cgroupParent_ + kind + name;
      std::vector<std::string> dirs = {top};
      for (size_t i = 0; i < dirs.size(); ++i) {
        for (const auto& e : listDirEntries(dirs[i]).value_or({}))
          if (e.type == DT_DIR) dirs.push_back(dirs[i] + "/" + e.name);
        for (const auto& l : split(readFile(dirs[i] + "/cgroup.procs").value_or(""), '\n')) {
          uint64_t pid = 0;
          if (parseUint64(trim(l), &pid) && pid > 1 && pid != static_cast<uint64_t>(::getpid()))
            ::kill(static_cast<pid_t>(pid), SIGKILL);
        }
      }
    }
  (void)thaw(name);
}

Status LxcHost::removeCgroups(const std::string& name, bool keepHeld) const {
  // The monitor leaves its cgroup a moment after the container stopped, so
  // an rmdir right after stop meets EBUSY: retry for a while.
  std::vector<std::string> left;
  if (!keepHeld) removeHeldMemoryCgroup(name);
  for (int attempt = 0; attempt < 60; ++attempt) {
    left.clear();
    for (const auto& h : cgroupHierarchies()) {
      for (const char* kind : {"/payload.", "/monitor."}) {
        std::string p = h + "/" + cgroupParent_ + kind + name;
        rmdirDepthFirst(p);
        if (pathExists(p)) left.push_back(p);
      }
    }
    if (left.empty()) return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return failedPrecondition("cgroup `" + left.front() + "` of `" + name + "` still holds tasks");
}

Status LxcHost::destroy(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(stop(name));
  Status cg = removeCgroups(name);
  LXMIG_RETURN_IF_ERROR(removeTree(dir(name)));
  return cg;
}

std::vector<std::string> LxcHost::list() const {
  std::vector<std::string> out;
  for (const auto& n : listDir(lxcPath_).value_or({}))
    if (pathExists(lxcPath_ + "/" + n + "/lxmig.json")) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lxmig::container
