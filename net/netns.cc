#include "lxmig/net/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>
#include <thread>

#include <nftables/libnftables.h>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "netns_parse.h"

namespace lxmig::net {
namespace {

constexpr const char* kLog = "netns";
// Everything in and out dropped but packets with CRIU's mark (libsoccr's
// SOCCR_MARK), as CRIU's own network lock.
constexpr const char* kLockRules =
    "table inet lxmig-restore-lock {\n"
    "  chain output { type filter hook output priority 0; policy drop; meta mark 0xc114 accept; }\n"
    "  chain input { type filter hook input priority 0; policy drop; meta mark 0xc114 accept; }\n"
    "}\n";
constexpr int kIpTimeoutMs = 5000;

// Dotted quad only: inet_pton would read a C string up to a NUL.
bool isIpv4(const std::string& s) {
  if (s.size() > 15 || s.find_first_not_of("0123456789.") != std::string::npos) return false;
  in_addr a{};
  return ::inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool isMac(const std::string& s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i % 3 == 2 ? c != ':' : !std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool isIfName(const std::string& s) {
  if (s.empty() || s.size() > 15) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c));
  });
}

// fe80::/64 with the interface id of a MAC (RFC 4291, appendix A).
std::string linkLocal(const std::string& mac) {
  unsigned b[6] = {};
  std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
  char out[64];
  std::snprintf(out, sizeof out, "fe80::%x:%x:%x:%x", ((b[0] ^ 2u) << 8) | b[1], (b[2] << 8) | 0xffu, 0xfe00u | b[3],
                (b[4] << 8) | b[5]);
  return out;
}

}  // namespace

Status checkLayout(const NetnsLayout& l) {
  if (!isIfName(l.hostVeth)) return invalidArgument("bad host interface name " + quote(l.hostVeth, 32));
  if (!isMac(l.hwaddr)) return invalidArgument("bad MAC address " + quote(l.hwaddr, 32));
  if (l.mtu < 68 || l.mtu > 65535) return invalidArgument("bad MTU " + std::to_string(l.mtu));
  if (l.addresses.empty() || l.addresses.size() > 64)
    return invalidArgument("a layout needs 1 to 64 addresses, not " + std::to_string(l.addresses.size()));
  for (const auto& a : l.addresses) {
    if (!isIpv4(a.ip)) return invalidArgument("not an IPv4 address: " + quote(a.ip, 32));
    if (a.prefixLen < 1 || a.prefixLen > 32) return invalidArgument("bad prefix length " + std::to_string(a.prefixLen));
    if (!a.broadcast.empty() && !isIpv4(a.broadcast))
      return invalidArgument("not an IPv4 broadcast address: " + quote(a.broadcast, 32));
  }
  if (!l.gateway.empty() && !isIpv4(l.gateway)) return invalidArgument("not an IPv4 gateway: " + quote(l.gateway, 32));
  return okStatus();
}

namespace {

Status runIp(const std::vector<std::string>& args, const std::string& stdinData = {}) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  LXMIG_ASSIGN_OR_RETURN(auto out, runCommand(argv, {.stdinData = stdinData, .timeoutMs = kIpTimeoutMs}));
  if (out.exitCode == 0) return okStatus();
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return internalError("`" + cmd + "` failed: " + std::string(trim(out.err)));
}

void addSysctls(const std::string& dir, const std::string& shown, std::vector<std::string>* lines) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_type == DT_REG) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    auto v = readFile(dir + "/" + n);
    if (v.ok()) lines->push_back("sysctl " + shown + "/" + n + " = " + std::string(trim(*v)));
  }
}

// What `ip` and `nft` print of the namespace, in one process (a fork of a
// large agent costs more than the commands): sections split by kSection.
constexpr const char* kSection = "@@lxmig@@";
constexpr const char* kShapeScript =
    "set -e; ip -j -d addr show; echo @@lxmig@@; ip -j -4 route show table all; echo @@lxmig@@;"
    " ip -j -6 route show table all; echo @@lxmig@@; ip -j -4 rule show; echo @@lxmig@@; ip -j -6 rule show;"
    " echo @@lxmig@@; nft list ruleset";

// Runs `script` (sections separated by kSection lines) and returns its n
// sections.
Result<std::vector<std::string>> runSections(const char* script, size_t n) {
  LXMIG_ASSIGN_OR_RETURN(auto out,
                         runCommand({"sh", "-c", script}, {.timeoutMs = kIpTimeoutMs, .maxOutputBytes = 8 << 20}));
  if (out.exitCode != 0)
    return internalError("reading the namespace with ip and nft failed: " + std::string(trim(out.err)));
  if (out.truncated) return resourceExhausted("ip and nft printed more than 8 MiB about the namespace");
  std::vector<std::string> parts;
  for (size_t from = 0;;) {
    const size_t at = out.out.find(std::string(kSection) + "\n", from);
    parts.push_back(out.out.substr(from, at == std::string::npos ? std::string::npos : at - from));
    if (at == std::string::npos) break;
    from = at + std::string(kSection).size() + 1;
  }
  if (parts.size() != n)
    return internalError("reading the namespace: " + std::to_string(parts.size()) + " sections, not " +
                         std::to_string(n));
  return parts;
}

// eth0's and lo's MTUs, inside the namespace (the calling thread joined
// it), without a process: this runs in the frozen window.
Status setMtus(int eth0, int lo) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return Status::fromErrno("socket", "for SIOCSIFMTU");
  for (const auto& [name, mtu] : {std::pair<const char*, int>{"eth0", eth0}, {"lo", lo}}) {
    ifreq r{};
    std::snprintf(r.ifr_name, sizeof r.ifr_name, "%s", name);
    r.ifr_mtu = mtu;
    if (::ioctl(s.get(), SIOCSIFMTU, &r) != 0) return Status::fromErrno("set MTU " + std::to_string(mtu) + " of", name);
  }
  return okStatus();
}

// Inside the namespace (the calling thread joined it).
Result<std::string> shapeHere() {
  LXMIG_ASSIGN_OR_RETURN(auto parts, runSections(kShapeScript, 6));
  std::vector<std::string> ifnames;
  LXMIG_ASSIGN_OR_RETURN(auto lines, shapeLinesFromIp(parts, &ifnames));
  for (const char* t : {"ip_tables_names", "ip6_tables_names"})
    if (auto names = readFile(std::string("/proc/thread-self/net/") + t); names.ok())
      for (const auto& n : split(*names, '\n')) lines.push_back(std::string(t) + " " + n);
  for (const char* fam : {"ipv4", "ipv6"}) {
    std::vector<std::string> devs = {"all", "default"};
    devs.insert(devs.end(), ifnames.begin(), ifnames.end());
    for (const auto& dev : devs)
      addSysctls(std::string("/proc/sys/net/") + fam + "/conf/" + dev, std::string(fam) + "/conf/" + dev, &lines);
  }
  for (const char* f : {"unix/max_dgram_qlen", "ipv4/ping_group_range"})
    if (auto v = readFile(std::string("/proc/sys/net/") + f); v.ok())
      lines.push_back(std::string("sysctl ") + f + " = " + std::string(trim(*v)));
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  return text;
}

}  // namespace

Result<std::unique_ptr<PreparedNetns>> PreparedNetns::create(const NetnsLayout& layout) {
  LXMIG_RETURN_IF_ERROR(checkLayout(layout));
  UniqueFd fd;
  Status made;
  // A namespace of its own for one thread (setns and unshare act per
  // thread for network namespaces); the fd keeps it once the thread ends.
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      made = Status::fromErrno("unshare", "a network namespace");
      return;
    }
    fd.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!fd) made = Status::fromErrno("open", "/proc/thread-self/ns/net");
  }).join();
  LXMIG_RETURN_IF_ERROR(made);
  std::unique_ptr<PreparedNetns> ns(new PreparedNetns(std::move(fd), layout.hostVeth, layout.mtu));
  const std::string path = ns->path();
  // The pair is made from here with its container end in the new
  // namespace: eth0 gets index 2 there, as in a container liblxc started.
  // Up at once: eth0 gets its carrier (on no bridge, nothing reaches the
  // node).
  LXMIG_RETURN_IF_ERROR(runIp({"-batch", "-"}, "link add " + layout.hostVeth + " type veth peer name eth0 netns " +
                                                   path + "\nlink set " + layout.hostVeth + " up\n"));
  std::string batch = "link set eth0 address " + layout.hwaddr + " mtu " + std::to_string(layout.mtu) + "\n";
  for (const auto& a : layout.addresses)
    batch += "addr add " + a.ip + "/" + std::to_string(a.prefixLen) +
             (a.broadcast.empty() ? std::string() : " broadcast " + a.broadcast) + " dev eth0\n";
  // eth0's IPv6 link-local address (EUI-64 of the MAC, as the kernel
  // makes it), without duplicate address detection: usable at once, as in
  // the running container, instead of tentative for a second.
  batch += "addr add " + linkLocal(layout.hwaddr) + "/64 dev eth0 scope link nodad\n";
  batch += "link set lo up\nlink set eth0 up\n";
  if (!layout.gateway.empty()) batch += "route add default via " + layout.gateway + " dev eth0\n";
  LXMIG_RETURN_IF_ERROR(inNamespace(path, CLONE_NEWNET, [&] {
                          return runIp({"-batch", "-"}, batch);
                        }).withContext("lay out the network namespace for " + layout.hostVeth));
  LXMIG_ASSIGN_OR_RETURN(ns->shape_, netnsShape(path));
  // Locked until the restore is done (after the shape: the container has
  // no such table). CRIU locks a namespace it rebuilds itself with the
  // table it saved at the dump; one it joins stays open otherwise, and a
  // restored TCP socket of a connection inside the container would send to
  // its peer before CRIU restored that, get a reset and lose its queues.
  // CRIU's own repair packets carry its mark and pass, as in its lock.
  LXMIG_RETURN_IF_ERROR(
      inNamespace(path, CLONE_NEWNET, [] {
        return runCommand({"nft", "-f", "-"}, {.stdinData = kLockRules, .timeoutMs = kIpTimeoutMs}).status();
      }).withContext("lock the prepared network namespace"));
  // The MTUs restored sockets note (see unlock()), after the shape: the
  // namespace has its own again before the container runs.
  LXMIG_RETURN_IF_ERROR(inNamespace(path, CLONE_NEWNET, [&] {
                          return setMtus(restoreMtu(layout.mtu), restoreMtu(kLoopbackMtu));
                        }).withContext("set the restore MTUs of " + layout.hostVeth + "'s namespace"));
  return ns;
}

int restoreMtu(int mtu) {
  const int path = std::min(mtu, 65535);
  return path > 1280 ? path - 1 : path + 1;
}

Status PreparedNetns::unlock() {
  return inNamespace(path(), CLONE_NEWNET, [&]() -> Status {
    LXMIG_RETURN_IF_ERROR(setMtus(mtu_, kLoopbackMtu).withContext("namespace of " + hostVeth_));
    // In this process (an nft process costs ~10 ms of the frozen window).
    UniqueHandle<nft_ctx, nft_ctx_free> nft(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!nft) return internalError("nft_ctx_new failed (libnftables)");
    if (nft_ctx_buffer_output(nft.get()) != 0 || nft_ctx_buffer_error(nft.get()) != 0)
      return internalError("libnftables: cannot buffer output");
    if (nft_run_cmd_from_buffer(nft.get(), "delete table inet lxmig-restore-lock") != 0) {
      const char* e = nft_ctx_get_error_buffer(nft.get());
      return internalError("unlock the prepared network namespace " + hostVeth_ + ": " +
                           std::string(trim(e ? std::string_view(e) : std::string_view("nftables failed"))));
    }
    return okStatus();
  });
}

std::optional<LoweredMtu> lowerForRestore(const std::string& link, int64_t mtu, std::optional<int64_t> ipv6Mtu) {
  if (!isIfName(link) || mtu < 68 || mtu > kLoopbackMtu) return std::nullopt;
  LoweredMtu m{.link = link, .mtu = static_cast<int>(mtu), .lowered = restoreMtu(static_cast<int>(mtu))};
  if (ipv6Mtu && *ipv6Mtu != mtu && *ipv6Mtu >= 1280 && *ipv6Mtu <= mtu) m.ipv6Mtu = static_cast<int>(*ipv6Mtu);
  return m;
}

Status raiseMtus(const std::string& nsPath, const std::vector<LoweredMtu>& links, int* raised) {
  int n = 0;
  Status st = inNamespace(nsPath, CLONE_NEWNET, [&]() -> Status {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return Status::fromErrno("socket", "for SIOCSIFMTU");
    for (const auto& l : links) {
      if (!isIfName(l.link)) continue;
      ifreq r{};
      std::snprintf(r.ifr_name, sizeof r.ifr_name, "%s", l.link.c_str());
      if (::ioctl(s.get(), SIOCGIFMTU, &r) != 0) {
        if (errno == ENODEV) continue;
        return Status::fromErrno("read the MTU of", l.link);
      }
      if (r.ifr_mtu != l.lowered) continue;
      r.ifr_mtu = l.mtu;
      if (::ioctl(s.get(), SIOCSIFMTU, &r) != 0)
        return Status::fromErrno("set MTU " + std::to_string(l.mtu) + " of", l.link);
      ++n;
      // The link's new MTU became its IPv6 MTU too.
      if (l.ipv6Mtu && *l.ipv6Mtu != l.mtu) {
        const std::string sysctl = "/proc/sys/net/ipv6/conf/" + l.link + "/mtu";
        if (pathExists(sysctl))
          LXMIG_RETURN_IF_ERROR(writeFile(sysctl, std::to_string(*l.ipv6Mtu)).withContext("IPv6 MTU of " + l.link));
      }
    }
    return okStatus();
  });
  if (raised) *raised = n;
  return st.withContext("raise the MTUs of the restored namespace");
}

PreparedNetns::~PreparedNetns() {
  if (handedOver_) return;
  // Gone with the namespace already when nothing else holds it.
  auto out = runCommand({"ip", "link", "del", hostVeth_}, {.timeoutMs = kIpTimeoutMs});
  if (out.ok() && out->exitCode != 0 && out->err.find("Cannot find device") == std::string::npos)
    LXMIG_LOG(kWarn, kLog) << "delete " << hostVeth_ << ": " << trim(out->err);
}

std::string PreparedNetns::path() const {
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd_.get());
}

Result<NetnsLayout> netnsLayoutOf(const std::string& nsPath) {
  Result<NetnsLayout> layout = internalError("not read");
  LXMIG_RETURN_IF_ERROR(inNamespace(nsPath, CLONE_NEWNET, [&]() -> Status {
    LXMIG_ASSIGN_OR_RETURN(auto parts,
                           runSections("set -e; ip -j addr show; echo @@lxmig@@; ip -j -4 route show default", 2));
    layout = layoutFromIp(parts[0], parts[1]);
    return okStatus();
  }));
  if (!layout.ok()) return Status(layout.status().code(), layout.status().message() + " in " + nsPath);
  return layout;
}

Result<std::string> netnsShape(const std::string& nsPath) {
  std::string text;
  LXMIG_RETURN_IF_ERROR(inNamespace(nsPath, CLONE_NEWNET, [&]() -> Status {
    LXMIG_ASSIGN_OR_RETURN(text, shapeHere());
    return okStatus();
  }));
  return text;
}

Result<std::string> netnsGlance(pid_t pid, uint64_t* inode) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/net/";
  struct stat st {};
  const std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::stat(ns.c_str(), &st) != 0) return Status::fromErrno("stat", ns);
  if (inode) *inode = st.st_ino;
  std::string text;
  // Columns that count traffic or references are left out.
  auto columns = [](const std::string& line, std::initializer_list<size_t> skip) {
    std::istringstream in(line);
    std::string w, out;
    for (size_t i = 0; in >> w; ++i)
      if (std::find(skip.begin(), skip.end(), i) == skip.end()) out += w + " ";
    return out;
  };
  LXMIG_ASSIGN_OR_RETURN(auto dev, readFile(dir + "dev"));
  for (const auto& l : split(dev, '\n'))
    if (auto colon = l.find(':'); colon != std::string::npos)
      text += "dev " + std::string(trim(l.substr(0, colon))) + "\n";
  LXMIG_ASSIGN_OR_RETURN(auto route, readFile(dir + "route"));
  for (const auto& l : split(route, '\n')) text += "route " + columns(l, {4, 5}) + "\n";
  for (const char* f : {"if_inet6", "ipv6_route", "fib_trie", "ip_tables_names", "ip6_tables_names"}) {
    auto t = readFile(dir + f);
    if (!t.ok()) continue;  // a table file exists once its module is loaded
    for (const auto& l : split(*t, '\n')) {
      if (std::string(f) == "if_inet6") text += std::string(f) + " " + columns(l, {4}) + "\n";
      else if (std::string(f) == "ipv6_route") text += std::string(f) + " " + columns(l, {6, 7}) + "\n";
      else text += std::string(f) + " " + l + "\n";
    }
  }
  return text;
}

std::string shapeDifference(const std::string& ours, const std::string& theirs) {
  if (ours == theirs) return "";
  auto a = split(ours, '\n'), b = split(theirs, '\n');
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<std::string> onlyA, onlyB;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(onlyA));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(onlyB));
  std::string out;
  if (!onlyA.empty()) out += "here: " + onlyA.front().substr(0, 200);
  if (!onlyB.empty()) out += std::string(out.empty() ? "" : "; ") + "prepared: " + onlyB.front().substr(0, 200);
  if (out.empty()) out = "the same facts in another order";
  return out;
}

}  // namespace lxmig::net
