#include "lxmig/node/doctor.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "lxmig/base/fd.h"
#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/process.h"
#include "lxmig/node/criu_cache.h"
#include "lxmig/tracking/dirty_tracker.h"

namespace lxmig::node {
namespace {

// The pipe CRIU 4.2's dump asks for (PIPE_MAX_SIZE, 819 pages) as the
// kernel rounds it (a power of two pages).
constexpr uint64_t kCriuDumpPipeBytes = uint64_t{4} << 20;

void add(v1::DoctorReply& r, const std::string& name, bool ok, const std::string& detail, const std::string& hint,
         bool required = true) {
  auto* c = r.add_checks();
  c->set_name(name);
  c->set_ok(ok);
  c->set_detail(detail);
  c->set_hint(ok ? "" : hint);
  c->set_required(required);
}

std::string firstLine(const std::string& s) {
  auto l = split(s, '\n');
  return l.empty() ? "" : std::string(trim(l[0]));
}

std::string lastLine(const std::string& s) {
  auto l = split(s, '\n');
  return l.empty() ? "" : std::string(trim(l.back()));
}

uint64_t freeIn(const std::string& dir) { return freeBytesIn(dir).value_or(0); }

}  // namespace

void addImagesCheck(v1::DoctorReply& r, const std::string& tmpfs, const std::string& disk) {
  std::string detail = humanBytes(freeIn(tmpfs)) + " free in " + tmpfs;
  const bool diskOk = disk.empty() || pathExists(disk);
  if (disk.empty()) detail += "; no disk directory (images_disk_dir = off): a larger migration is refused";
  else if (diskOk) detail += ", then " + humanBytes(freeIn(disk)) + " free on disk in " + disk;
  else detail += "; disk directory " + disk + " is missing";
  add(r, "images-staging", diskOk, detail, "restart lxmigd (it creates images_disk_dir), or set it to an existing path",
      false);
}

bool hostReclaimsFreeMemory(const std::string& sys) {
  // virtio device id 5 is the balloon; its `features` file has one '0' or
  // '1' per feature bit, bit 5 being VIRTIO_BALLOON_F_REPORTING.
  constexpr size_t kReportingBit = 5;
  const std::string devices = sys + "/bus/virtio/devices";
  for (const auto& d : listDir(devices).value_or(std::vector<std::string>{})) {
    auto id = readFileHead(devices + "/" + d + "/device", 64);
    auto features = readFileHead(devices + "/" + d + "/features", 4096);
    if (id.ok() && trim(*id) == "0x0005" && features.ok() && features->size() > kReportingBit &&
        (*features)[kReportingBit] == '1')
      return true;
  }
  return false;
}

void preferLxmigCriu() {
  const char* dir = std::getenv("LXMIG_CRIU_DIR");
  std::string d = dir ? dir : "/opt/lxmig/bin";
  if (!pathExists(d + "/criu")) return;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  if (startsWith(p, d + ":")) return;
  ::setenv("PATH", (d + ":" + p).c_str(), 1);
}

v1::DoctorReply runDoctor(const std::string& nodeName) {
  v1::DoctorReply r;
  r.set_node(nodeName);
  const std::string setupHint = "run scripts/setup.sh as root (installs packages and CRIU 4.2.1)";

  add(r, "root", ::geteuid() == 0, ::geteuid() == 0 ? "running as root" : "not root",
      "lxmigd and migrations need root");

  utsname u{};
  ::uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  bool kernOk = major > 6 || (major == 6 && minor >= 7);
  add(r, "kernel", kernOk, std::string("Linux ") + u.release,
      "Linux >= 6.7 is needed for PAGEMAP_SCAN (pre-copy dirty tracking)", false);

  std::string missingNs;
  for (const char* ns : {"pid", "net", "ipc", "uts", "mnt", "cgroup", "user", "time"})
    if (!pathExists(std::string("/proc/self/ns/") + ns)) missingNs += std::string(missingNs.empty() ? "" : ",") + ns;
  add(r, "namespaces", missingNs.empty(),
      missingNs.empty() ? "pid net ipc uts mnt cgroup user time" : "missing: " + missingNs,
      "enable CONFIG_*_NS for the missing namespaces in the kernel");

  bool v2 = pathExists("/sys/fs/cgroup/cgroup.controllers");
  bool freezer = v2 || pathExists("/sys/fs/cgroup/freezer/cgroup.procs");
  add(r, "cgroups", freezer,
      v2 ? "cgroup2 (unified) with freeze" : (freezer ? "cgroup v1 with freezer controller" : "no freezer"),
      "mount the freezer controller (cgroup v1) or run a cgroup2 host");

  {
    UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    add(r, "userfaultfd", static_cast<bool>(fd), fd ? "available" : std::string("userfaultfd: ") + strerror(errno),
        "enable CONFIG_USERFAULTFD (needed by lazy restore and pre-copy)", false);
  }
  // Capabilities root holds here (it may run in a container with fewer)
  // and what each missing one costs.
  {
    uint64_t eff = 0;
    if (auto st = readFile("/proc/self/status"); st.ok())
      for (const auto& line : split(*st, '\n'))
        if (startsWith(line, "CapEff:")) eff = std::strtoull(std::string(trim(line.substr(7))).c_str(), nullptr, 16);
    struct Cap {
      int bit;
      const char* check;
      const char* name;
      bool required;
      const char* without;
    };
    const Cap caps[] = {
        {21, "cap-sys-admin", "CAP_SYS_ADMIN", true, "no namespaces, mounts, freezer or CRIU"},
        {19, "cap-sys-ptrace", "CAP_SYS_PTRACE", true, "CRIU cannot seize processes; no dirty tracker can be injected"},
        {12, "cap-net-admin", "CAP_NET_ADMIN", true, "no bridges, routes, nftables or conntrack"},
        {24, "cap-sys-resource", "CAP_SYS_RESOURCE", false,
         "the kernel refuses CRIU's reads of the resource limits of processes of other uids; the "
         "liblxmig-rlimits.so shim answers them from /proc/PID/limits, so dumps still work"},
        {40, "cap-checkpoint", "CAP_CHECKPOINT_RESTORE", false, "none while CAP_SYS_ADMIN is held"},
    };
    for (const auto& c : caps) {
      const bool held = (eff >> c.bit) & 1;
      add(r, c.check, held, std::string(c.name) + (held ? " held" : " missing: " + std::string(c.without)),
          std::string("run lxmigd with ") + c.name + " (a container for the agent must keep it)", c.required);
    }
    // CRIU's dump drains memory through pipes it grows to ~3.2 MiB (819
    // pages, rounded up to 4 MiB by the kernel); above fs.pipe-max-size
    // that needs CAP_SYS_RESOURCE, else it makes more pipes of 1 MiB and
    // talks to its parasite once per pipe.
    const bool resource = (eff >> 24) & 1;
    const uint64_t pipeMax =
        parseUint(trim(readFile("/proc/sys/fs/pipe-max-size").value_or("0")), "fs.pipe-max-size", 0, UINT64_MAX)
            .value_or(0);
    const bool bigPipes = resource || pipeMax >= kCriuDumpPipeBytes;
    add(r, "criu-dump-pipes", bigPipes,
        resource   ? "CRIU's dump grows its pipes to 4 MiB (CAP_SYS_RESOURCE held)"
        : bigPipes ? "CRIU's dump grows its pipes to 4 MiB (fs.pipe-max-size = " + humanBytes(pipeMax) + ")"
                   : "fs.pipe-max-size = " + humanBytes(pipeMax) +
                         " and no CAP_SYS_RESOURCE: CRIU's dump drains memory through pipes of that size, about 75 ms "
                         "more in the frozen window per GiB of memory (measured on a 2 vCPU machine)",
        "sysctl -w fs.pipe-max-size=4194304, and the same in /etc/sysctl.d/ (lets every user make pipes of up to "
        "4 MiB; lxmig never changes it)",
        false);
  }
  {
    // Pre-copy in processes that dropped privileges (PostgreSQL, nginx
    // workers): their own userfaultfd() needs the global sysctl, which
    // lxmig leaves alone; /dev/userfaultfd serves instead.
    const std::string sysctl = std::string(trim(readFile("/proc/sys/vm/unprivileged_userfaultfd").value_or("?")));
    const bool device = pathExists("/dev/userfaultfd");
    add(r, "userfaultfd-non-root", sysctl == "1" || device,
        sysctl == "1" ? "vm.unprivileged_userfaultfd = 1: every process makes its own"
        : device      ? "vm.unprivileged_userfaultfd = " + sysctl +
                       ": processes of other uids get theirs through /dev/userfaultfd"
                 : "neither /dev/userfaultfd nor vm.unprivileged_userfaultfd = 1: processes of other uids "
                   "move by stop-and-copy",
        "Linux >= 6.1 provides /dev/userfaultfd (lxmig never changes the sysctl)", false);
    const std::string yama = std::string(trim(readFile("/proc/sys/kernel/yama/ptrace_scope").value_or("0")));
    add(r, "ptrace-scope", yama != "3",
        "kernel.yama.ptrace_scope = " + yama + (yama == "3" ? ": no process may be traced (no CRIU dump)" : ""),
        "set kernel.yama.ptrace_scope to 2 or less (3 forbids ptrace for root too, until reboot)");
  }
  {
    long rc = ::syscall(SYS_pidfd_getfd, -1, 0, 0);
    bool ok = !(rc < 0 && errno == ENOSYS);
    add(r, "pidfd_getfd", ok, ok ? "available" : "ENOSYS", "Linux >= 5.6 is needed for pidfd_getfd", false);
  }

  auto criuVer = runCommand({"criu", "--version"}, {.timeoutMs = 10000});
  bool criuFound = criuVer.ok() && criuVer->exitCode == 0;
  std::string ver = criuFound ? firstLine(criuVer->out) : "criu not found in PATH";
  bool verOk = criuFound && ver.find("4.2") != std::string::npos;
  add(r, "criu-version", verOk, ver,
      criuFound ? "CRIU >= 4.2.1 is needed on kernels >= 6.16; " + setupHint + " and put /opt/lxmig/bin first in PATH"
                : setupHint + " and put /opt/lxmig/bin first in PATH");
  if (criuFound) {
    auto chk = runCommand({"criu", "check"}, {.timeoutMs = 60000});
    bool ok = chk.ok() && chk->exitCode == 0;
    add(r, "criu-check", ok, ok ? "Looks good." : (chk.ok() ? lastLine(chk->err + chk->out) : chk.status().message()),
        "`criu check` must pass on this kernel: " + setupHint);
    auto lazy = runCommand({"criu", "check", "--feature", "uffd-noncoop"}, {.timeoutMs = 30000});
    bool lok = lazy.ok() && lazy->exitCode == 0;
    add(r, "criu-lazy-pages", lok, lok ? "uffd-noncoop supported" : "not supported",
        "lazy restore needs userfaultfd non-cooperative events", false);
    // What each of lxmig's CRIU patches gives (criu/patches/), and what
    // lacking it costs.
    struct PatchCheck {
      const char* name;
      bool ok;
      const char* with;
      const char* without;
    };
    const PatchCheck patches[] = {
        {"criu-held-pages", criuLeavesOutHeldPages(), "pre-copy's dump leaves out the pages the target holds",
         "pre-copy's dump drains every page (a longer frozen window)"},
        {"criu-merge", criuHandsOverUnixPeers() && criuDumpsSysvOutside(),
         "merge carries Unix connections between the merged containers and System V objects",
         "merge refuses Unix connections between the merged containers and System V objects"},
        {"criu-unix-names", criuNamesAcceptedEnds(),
         "a connection accepted from an abstract Unix listener keeps its name",
         "a connection accepted from an abstract Unix listener comes back unnamed (getpeername of its client is "
         "empty)"},
        {"criu-shmem-write", criuWritesShmem(), "shared memory is restored with pwrite (no page-table faults)",
         "shared memory is restored through a mapping (a fault per page in the frozen window)"},
        {"criu-userns-lazy", criuLazyInUserns(),
         "a container with a user namespace of its own is restored lazily (userfaultfd from /dev/userfaultfd)",
         "a container with a user namespace of its own is restored eagerly (every page before its processes run)"},
        {"criu-shmem-listed", criuListsDiscardedShmem(),
         "pre-copy's dump lists the shared memory the agent rebuilds without moving its pages",
         "pre-copy's dump moves every page of shared memory into /dev/null (~30 ms per 140 MiB, frozen)"},
        {"criu-shmem-held", criuTakesHeldShmem(),
         "pre-copy's restore takes the shared memory the target kept up to date as it is (nothing written frozen)",
         "pre-copy's restore writes every page of shared memory into a new object (~70 ms per 140 MiB, frozen)"},
        {"criu-pagemap-offsets", criuReadsPagemapOffsets(),
         "pre-copy's target hands over the pages it kept where they are (nothing moved in the frozen window)",
         "pre-copy's target moves the pages it kept into address order (up to the whole memory, beside the dump)"},
    };
    for (const auto& p : patches)
      add(r, p.name, p.ok,
          p.ok ? std::string("built with lxmig's patch: ") + p.with
               : std::string("without lxmig's patch: ") + p.without,
          setupHint + " (it builds CRIU with criu/patches/ applied)", false);
    bool cached = false;
    const std::string cache = criuKerndatState(&cached);
    add(r, "criu-kerndat-cache", cached, cache,
        "restart lxmigd (it keeps the cache on /dev/shm when /run is not a tmpfs), or mount a tmpfs on /run", false);
  }
  // Dirty trackers for pre-copy, probed in this process (best first).
  std::string chosen;
  for (const auto& b : tracking::trackerProbes()) {
    Status st = b.probe();
    if (st.ok() && chosen.empty()) chosen = b.name;
    add(r, std::string("tracker-") + b.name, st.ok(),
        std::string(b.description) + (st.ok() ? ": works" : ": " + st.message()),
        std::string(b.name) == "uffd-wp" ? "Linux >= 6.7 with CONFIG_USERFAULTFD and uffd-wp (PTE markers)"
                                         : "not needed when uffd-wp works",
        false);
  }
  add(r, "tracker", true, "pre-copy uses `" + chosen + "` (override: lxmig migrate --tracker)", "", false);

  auto lxc = runCommand({"lxc-start", "--version"}, {.timeoutMs = 10000});
  bool lxcOk = lxc.ok() && lxc->exitCode == 0;
  add(r, "lxc", lxcOk, lxcOk ? "liblxc " + firstLine(lxc->out) : "lxc tools not found",
      "apt-get install lxc lxc-dev (Debian 12 ships 5.0.2)");
  bool apparmor = pathExists("/sys/kernel/security/apparmor");
  bool lxcConfOk = true;
  if (auto conf = readFile("/etc/lxc/default.conf"); conf.ok() && !apparmor)
    lxcConfOk = conf->find("lxc.apparmor") == std::string::npos;
  add(r, "lxc-apparmor", true,
      apparmor ? "AppArmor present"
               : std::string("no AppArmor in this kernel; lxmig's container configs carry no apparmor lines") +
                     (lxcConfOk ? "" : " (/etc/lxc/default.conf has some, unused by lxmig)"),
      "", false);

  auto nft = runCommand({"nft", "list", "tables"}, {.timeoutMs = 10000});
  bool nftOk = nft.ok() && nft->exitCode == 0;
  add(r, "nftables", nftOk, nftOk ? "nft works" : (nft.ok() ? lastLine(nft->err) : "nft not found"),
      "apt-get install nftables; the kernel needs nf_tables (CRIU's network lock uses it)");

  bool ct = pathExists("/proc/sys/net/netfilter/nf_conntrack_max");
  auto ctl = runCommand({"conntrack", "-C"}, {.timeoutMs = 10000});
  bool ctlOk = ctl.ok() && ctl->exitCode == 0;
  add(r, "conntrack", ct && ctlOk,
      ct ? (ctlOk ? "conntrack table with ctnetlink (" + firstLine(ctl->out) + " entries)" : "ctnetlink not usable")
         : "nf_conntrack not loaded",
      "modprobe nf_conntrack nf_conntrack_netlink; apt-get install conntrack");

  bool bridge = pathExists("/sys/module/bridge") || pathExists("/proc/sys/net/bridge");
  add(r, "bridge", true, bridge ? "bridge support loaded" : "bridge module not loaded yet (auto-loads on first use)",
      "", false);

  add(r, "host-memory", true,
      hostReclaimsFreeMemory()
          ? "the host takes back free memory of this virtual machine (virtio balloon free page reporting): memory "
            "one migration frees and a later one uses is faulted in from the host again, up to seconds per GiB "
            "(docs/operations.md, \"Room for images\")"
          : "no free page reporting: memory freed here stays this machine's",
      "", false);
  return r;
}

}  // namespace lxmig::node
