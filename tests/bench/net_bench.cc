// Network steps of FINAL, side by side (run by scripts/bench_net.sh):
// moving one container's conntrack entries (and its firewall chain) from one
// network namespace ("source node") to another ("target node").
//
//   lxmig:       net::exportConntrack + Firewall::exportContainer on the
//                source, the NetState message serialised and parsed as on the
//                wire, Firewall::importContainer + net::importConntrack on
//                the target
//   conntrack-R: `conntrack -L -s IP` and `-L -d IP` on the source, the
//                listing turned into `-I` lines, `conntrack -R FILE` on the
//                target (conntrack-tools' batch mode: one process)
//   conntrack-I: the same listing, then one `conntrack -I` process per entry
//                (only up to --max-per-entry entries: it takes minutes)
//
// Output: one JSON object per line {"entries","method","run","ms","moved"}.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "lxmig/base/files.h"
#include "lxmig/base/process.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/net/firewall.h"
#include "lxmig/v1/net.pb.h"

using namespace lxmig;

namespace {

const char* kIp = "10.200.1.10";

double nowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void die(const std::string& m) {
  std::fprintf(stderr, "net_bench: %s\n", m.c_str());
  std::exit(1);
}

void sh(const std::string& ns, const std::string& cmd) {
  auto r = runCommand({"ip", "netns", "exec", ns, "sh", "-c", cmd}, {.timeoutMs = 600000});
  if (!r.ok() || r->exitCode != 0) die(cmd + ": " + (r.ok() ? r->err : r.status().message()));
}
std::string shOut(const std::string& ns, const std::string& cmd) {
  auto r = runCommand({"ip", "netns", "exec", ns, "sh", "-c", cmd}, {.timeoutMs = 600000});
  if (!r.ok()) die(cmd + ": " + r.status().message());
  return r->out;
}

// This thread into a namespace (and back with home()).
int gHome = -1;
void enter(const std::string& ns) {
  int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) die("setns " + ns);
  ::close(fd);
}
void home() {
  if (::setns(gHome, CLONE_NEWNET) != 0) die("setns home");
}

// N established TCP flows toward the container, plus N/10 of another one.
net::ConntrackEntries makeEntries(size_t n, uint32_t dst) {
  net::ConntrackEntries out(n);
  for (size_t i = 0; i < n; ++i) {
    auto& e = out[i];
    uint32_t src = htonl(0x0a630000u | static_cast<uint32_t>(2 + i / 60000));  // 10.99.x.y
    e.proto = 6;
    e.origSrc = src;
    e.origDst = dst;
    e.origSport = static_cast<uint16_t>(1024 + i % 60000);
    e.origDport = 7000;
    e.replSrc = dst;
    e.replDst = src;
    e.replSport = 7000;
    e.replDport = e.origSport;
    e.status = 0x2 | 0x4;  // SEEN_REPLY | ASSURED
    e.timeout = 3600;
    e.tcpState = 3;  // ESTABLISHED
    e.tcpWscaleOrig = 7;
    e.tcpWscaleRepl = 7;
  }
  return out;
}

// "tcp 6 3599 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=.. ... [ASSURED] mark=0 use=1"
// -> "-I -p tcp -t 3599 --state ESTABLISHED -s .. -d .. --sport .. --dport .. -u SEEN_REPLY,ASSURED -m 0"
std::string toInsertLines(const std::string& listing) {
  std::ostringstream out;
  std::istringstream in(listing);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::string proto, num, timeout, state;
    if (!(w >> proto >> num >> timeout)) continue;
    std::vector<std::string> kv;
    std::string tok;
    bool assured = false;
    std::string mark = "0";
    while (w >> tok) {
      if (tok.find('=') != std::string::npos) kv.push_back(tok);
      else if (tok == "[ASSURED]") assured = true;
      else if (tok[0] != '[') state = tok;
    }
    std::string src, dst, sport, dport;
    int seen = 0;
    for (const auto& x : kv) {
      auto k = x.substr(0, x.find('='));
      auto v = x.substr(x.find('=') + 1);
      if (k == "src" && seen == 0) src = v;
      else if (k == "dst" && seen == 0) dst = v;
      else if (k == "sport" && seen == 0) sport = v;
      else if (k == "dport" && seen == 0) {
        dport = v;
        seen = 1;
      } else if (k == "mark") mark = v;
    }
    out << "-I -p " << proto << " -t " << timeout << (state.empty() ? "" : " --state " + state) << " -s " << src
        << " -d " << dst << " --sport " << sport << " --dport " << dport << " -u SEEN_REPLY"
        << (assured ? ",ASSURED" : "") << " -m " << mark << "\n";
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes = {10, 1000, 50000};
  int runs = 5;
  size_t maxPerEntry = 1000;
  bool lxmigOnly = false;  // for profiling
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::istringstream in(argv[++i]);
      size_t n;
      while (in >> n) sizes.push_back(n);
    } else if (a == "--max-per-entry" && i + 1 < argc) maxPerEntry = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--lxmig-only") lxmigOnly = true;
    else die("usage: net_bench [--runs N] [--sizes \"10 1000 50000\"] [--max-per-entry N] [--lxmig-only]");
  }
  if (::geteuid() != 0) die("needs root (network namespaces, nftables, conntrack)");
  gHome = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const std::string A = "lxnb-src", B = "lxnb-dst";
  for (const auto& ns : {A, B}) {
    (void)runCommand({"ip", "netns", "del", ns});
    if (auto r = runCommand({"ip", "netns", "add", ns}); !r.ok() || r->exitCode != 0) die("ip netns add " + ns);
    sh(ns,
       "nft add table ip warm; nft add chain ip warm c '{ type filter hook prerouting priority 0; }'; "
       "nft add rule ip warm c ct state new accept");
  }
  struct Cleanup {
    std::string a, b;
    ~Cleanup() {
      (void)runCommand({"ip", "netns", "del", a});
      (void)runCommand({"ip", "netns", "del", b});
    }
  } cleanup{A, B};

  // The container's firewall chain (a few rules), on the source.
  enter(A);
  auto fwA = net::Firewall::open("lxmig");
  if (!fwA.ok()) die(fwA.status().toString());
  if (auto st = fwA->ensureBase({.strict = true, .bridge = "lxbr0"}); !st.ok()) die(st.toString());
  if (auto st = fwA->addContainer("web", kIp); !st.ok()) die(st.toString());
  for (const char* r : {"tcp dport 80 accept", "tcp dport 443 accept", "udp dport 53 accept"})
    if (auto x = fwA->addRule("web", r); !x.ok()) die(x.status().toString());
  home();
  enter(B);
  auto fwB = net::Firewall::open("lxmig");
  if (!fwB.ok()) die(fwB.status().toString());
  if (auto st = fwB->ensureBase({.strict = true, .bridge = "lxbr0"}); !st.ok()) die(st.toString());
  home();

  uint32_t ip = 0;
  ::inet_pton(AF_INET, kIp, &ip);
  uint32_t other = 0;
  ::inet_pton(AF_INET, "10.200.1.11", &other);
  for (size_t n : sizes) {
    // Source table: n entries of the container, n/10 of another container.
    enter(A);
    (void)net::deleteConntrack({kIp, "10.200.1.11"});
    if (auto r = net::importConntrack(makeEntries(n, ip)); !r.ok()) die(r.status().toString());
    if (auto r = net::importConntrack(makeEntries(n / 10 + 1, other)); !r.ok()) die(r.status().toString());
    home();
    for (int run = 0; run < runs; ++run) {
      // lxmig
      enter(B);
      (void)net::deleteConntrack({kIp});
      (void)fwB->removeContainer("web");
      home();
      double t0 = nowMs();
      enter(A);
      v1::NetState ns;
      auto rules = fwA->exportContainer("web", kIp);
      auto entries = net::exportConntrack({kIp});
      if (!rules.ok() || !entries.ok()) die("export failed");
      ns.set_rules_json(*rules);
      ns.set_conntrack(net::encodeConntrack(*entries));
      std::string wire = ns.SerializeAsString();
      home();
      double t1 = nowMs();
      enter(B);
      v1::NetState got;
      got.ParseFromString(wire);
      if (auto st = fwB->importContainer("web", kIp, got.rules_json()); !st.ok()) die(st.toString());
      auto in = net::decodeConntrack(got.conntrack());
      if (!in.ok()) die(in.status().toString());
      auto imp = net::importConntrack(*in);
      if (!imp.ok()) die(imp.status().toString());
      home();
      double t2 = nowMs();
      std::printf(
          "{\"entries\":%zu,\"method\":\"lxmig\",\"run\":%d,\"ms\":%.2f,\"export_ms\":%.2f,\"import_ms\":%.2f,"
          "\"moved\":%zu,\"wire_bytes\":%zu}\n",
          n, run, t2 - t0, t1 - t0, t2 - t1, imp->created + imp->updated, wire.size());
      std::fflush(stdout);

      if (lxmigOnly) continue;
      // conntrack-tools, batch mode (-R)
      enter(B);
      (void)net::deleteConntrack({kIp});
      home();
      double c0 = nowMs();
      std::string listing =
          shOut(A, std::string("conntrack -L -d ") + kIp + " 2>/dev/null; conntrack -L -s " + kIp + " 2>/dev/null");
      std::string lines = toInsertLines(listing);
      if (!writeFileAtomic("/tmp/lxnb-entries", lines, 0600).ok()) die("write /tmp/lxnb-entries");
      sh(B, "conntrack -R /tmp/lxnb-entries >/dev/null 2>&1 || true");
      double c1 = nowMs();
      std::string count = shOut(B, std::string("conntrack -L -d ") + kIp + " 2>/dev/null | wc -l");
      std::printf("{\"entries\":%zu,\"method\":\"conntrack-R\",\"run\":%d,\"ms\":%.2f,\"moved\":%s}\n", n, run, c1 - c0,
                  std::string(trim(count)).c_str());
      std::fflush(stdout);

      // conntrack-tools, one -I per entry (small sizes, first run only)
      if (n <= maxPerEntry && run == 0) {
        enter(B);
        (void)net::deleteConntrack({kIp});
        home();
        double p0 = nowMs();
        std::string l2 = shOut(A, std::string("conntrack -L -d ") + kIp + " 2>/dev/null");
        std::string script;
        std::istringstream in(toInsertLines(l2));
        std::string one;
        while (std::getline(in, one)) script += "conntrack " + one + " >/dev/null 2>&1\n";
        if (!writeFileAtomic("/tmp/lxnb-script", script, 0700).ok()) die("write /tmp/lxnb-script");
        sh(B, "sh /tmp/lxnb-script");
        double p1 = nowMs();
        std::string c2 = shOut(B, std::string("conntrack -L -d ") + kIp + " 2>/dev/null | wc -l");
        std::printf("{\"entries\":%zu,\"method\":\"conntrack-I\",\"run\":%d,\"ms\":%.2f,\"moved\":%s}\n", n, run,
                    p1 - p0, std::string(trim(c2)).c_str());
        std::fflush(stdout);
      }
    }
  }
  ::unlink("/tmp/lxnb-entries");
  ::unlink("/tmp/lxnb-script");
  return 0;
}
