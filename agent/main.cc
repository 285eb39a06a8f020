// lxmigd: the per-node agent.
#include <malloc.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <set>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/migration/adopt.h"
#include "lxmig/migration/merge.h"
#include "lxmig/node/config.h"
#include "lxmig/node/criu_cache.h"
#include "lxmig/node/doctor.h"
#include "lxmig/node/node.h"
#include "lxmig/transport/data_link.h"
#include "service.h"

using namespace lxmig;
using namespace lxmig::agent;
using lxmig::container::RunState;
using lxmig::node::AgentConfig;
using lxmig::node::criuLeavesOutHeldPages;
using lxmig::node::keepCriuKerndat;
using lxmig::node::Node;
using lxmig::node::preferLxmigCriu;
using lxmig::transport::ChunkSource;
using lxmig::transport::connectDataLink;
using lxmig::transport::DataServer;

namespace {

// Largest gRPC message: chunks carry 1 MiB; a container spec or a report a
// few KiB; a NetState with 50,000 conntrack entries a few MiB.
constexpr int kMaxMessageBytes = 16 << 20;

bool isMountPoint(const std::string& path) {
  struct stat a {
  }, b{};
  if (::stat(path.c_str(), &a) != 0 || ::stat((path + "/..").c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

// `lxmigd --probe host:port`: one mTLS call with this node's identity, then
// a data link handshake on the port the peer names, so an operator can check
// certificates and both ports before trusting a migration to them.
int probePeer(const std::string& address, const AgentConfig& cfg) {
  grpc::SslCredentialsOptions o;
  for (auto [path, dst] : {std::pair{cfg.tlsCa, &o.pem_root_certs}, std::pair{cfg.tlsCert, &o.pem_cert_chain},
                           std::pair{cfg.tlsKey, &o.pem_private_key}}) {
    if (path.empty()) {
      std::fprintf(stderr, "lxmigd: --probe needs tls_ca, tls_cert and tls_key\n");
      return 2;
    }
    auto text = readFile(path);
    if (!text.ok()) {
      std::fprintf(stderr, "lxmigd: %s\n", text.status().message().c_str());
      return 2;
    }
    *dst = *text;
  }
  auto stub = v1::Peer::NewStub(grpc::CreateChannel(address, grpc::SslCredentials(o)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetNodeRequest rq;
  v1::NodeInfo rep;
  grpc::Status st = stub->GetNode(&ctx, rq, &rep);
  if (!st.ok()) {
    std::fprintf(stderr, "lxmigd: probe %s: refused or unreachable: %s\n", address.c_str(), st.error_message().c_str());
    return 1;
  }
  std::printf("%s: node %s accepts this identity\n", address.c_str(), rep.name().c_str());
  if (rep.data_port() == 0) {
    std::printf("%s: node %s offers no data link (bulk data would go over gRPC)\n", address.c_str(),
                rep.name().c_str());
    return 0;
  }
  auto hp = splitHostPort(address);
  if (!hp.ok()) {
    std::fprintf(stderr, "lxmigd: probe %s: %s\n", address.c_str(), hp.status().message().c_str());
    return 2;
  }
  auto link = connectDataLink({o.pem_root_certs, o.pem_cert_chain, o.pem_private_key}, hp->first,
                              static_cast<uint16_t>(rep.data_port()), 5000);
  if (!link.ok()) {
    std::fprintf(stderr, "lxmigd: probe %s: data link on port %u: %s\n", address.c_str(), rep.data_port(),
                 link.status().message().c_str());
    return 1;
  }
  (*link)->cancel();
  std::printf("%s: data link on port %u accepts this identity\n", address.c_str(), rep.data_port());
  return 0;
}

// CRIU images go to tmpfs: dumps and restores are memory-speed and leave
// nothing on disk.
Status mountImagesTmpfs(const std::string& dir, const std::string& size) {
  if (size == "0" || isMountPoint(dir)) return okStatus();
  std::string opts = "mode=0700,size=" + size;
  if (::mount("lxmig-images", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
    return Status::fromErrno("mount tmpfs on", dir);
  return okStatus();
}

// After a crash or restart: addresses of running containers routed here
// again; FROZEN ones (caught in a migration's frozen window) settled with
// their migration's target (migration/settle.h). Addresses blocked by
// an unfinished migration stay blocked only for copies still frozen.
// Returns how many are left frozen.
int recoverAfterRestart(Node& node, lxmig::migration::FrozenCopies& frozen) {
  for (const auto& name : node.lxc().list())
    if (node.lxc().state(name) == RunState::kRunning)
      if (auto spec = node.spec(name); spec.ok()) (void)node.claimAddress(*spec);
  int left = frozen.settle();
  std::set<std::string> stillBlocked;
  for (const auto& name : node.lxc().list())
    if (node.lxc().state(name) == RunState::kFrozen)
      if (auto spec = node.spec(name); spec.ok()) stillBlocked.insert(spec->ip);
  if (auto b = node.firewall().blocked(); b.ok())
    for (const auto& ip : *b)
      if (!stillBlocked.count(ip)) (void)node.resumeTraffic(ip);
  return left;
}

// Removes the audit's rows older than `beforeMs`, a batch at a time, until
// none is left or the agent stops.
void pruneAudit(lxmig::store::AuditLog& audit, int64_t beforeMs, const std::atomic<bool>& stopping) {
  lxmig::store::AuditLog::Pruned sum;
  while (!stopping) {
    auto r = audit.prune(beforeMs);
    if (!r.ok()) {
      LXMIG_LOG(kWarn, "agent") << "audit retention: " << r.status().toString();
      return;
    }
    sum.migrations += r->migrations;
    sum.nodeEvents += r->nodeEvents;
    sum.decisions += r->decisions;
    if (r->total() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (sum.total() > 0)
    LXMIG_LOG(kInfo, "agent") << "audit retention: removed " << sum.migrations << " migration(s), " << sum.nodeEvents
                              << " node event(s), " << sum.decisions << " decision(s) older than the retention";
}

}  // namespace

// lxmigd --check-config FILE: every problem of the file and of the cluster
// file it names, one line each on stdout; exit 0 when there is none, 1
// otherwise, 2 when a file cannot be read or is not TOML.
int printConfigCheck(const std::string& path) {
  auto check = node::checkConfigFile(path);
  if (!check.ok()) {
    std::printf("%s\n", check.status().message().c_str());
    return 2;
  }
  for (const auto& e : check->errors) std::printf("%s\n", e.c_str());
  for (const auto& w : check->warnings) std::printf("warning: %s\n", w.c_str());
  if (check->errors.empty() && check->warnings.empty()) std::printf("%s: ok\n", path.c_str());
  return check->errors.empty() ? 0 : 1;
}

int main(int argc, char** argv) {
  // Bulk transfers allocate and free 1 MiB messages all the time; keep that
  // memory in the heap instead of mapping (and faulting in) fresh pages for
  // every message. Measured: the receiver spent most of its time in page
  // faults before this.
  ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 512 << 20);
  log::setProgram("lxmigd");
  // Nothing inherited beyond stdio: a shell's pipes kept open here would
  // make the agent look IPC-connected to that shell, and would reach every
  // helper and container the agent starts.
  closeFdsFrom(3);
  preferLxmigCriu();
  CLI::App app{"lxmigd: the lxmig node agent"};
  std::string configPath;
  AgentConfig over;
  app.add_option("-c,--config", configPath, "agent config file (TOML subset)");
  app.add_option("--node", over.node, "node name");
  app.add_option("--listen", over.listen, "peer address host:port (mutual TLS)");
  app.add_option("--socket", over.socket, "local Unix socket for the CLI");
  app.add_option("--state-dir", over.stateDir, "state directory");
  app.add_option("--lxc-path", over.lxcPath, "LXC path (default <state-dir>/lxc)");
  app.add_option("--cgroup-parent", over.cgroupParent, "cgroup directory for containers");
  app.add_option("--bridge", over.bridge, "container bridge");
  app.add_option("--fabric-if", over.fabricIf, "interface toward the other nodes (gratuitous ARP)");
  app.add_option("--container-subnet", over.containerSubnet, "this node's container address pool (CIDR)");
  app.add_option("--cluster-prefix", over.clusterPrefix, "containers' prefix (CIDR)");
  app.add_option("--gateway", over.gateway, "containers' gateway address");
  app.add_option("--cluster", over.clusterFile, "cluster inventory file");
  app.add_option("--tls-ca", over.tlsCa, "cluster CA (PEM)");
  app.add_option("--tls-cert", over.tlsCert, "this node's certificate (PEM)");
  app.add_option("--tls-key", over.tlsKey, "this node's key (PEM)");
  app.add_option("--data-listen", over.dataListen, "HOST:PORT for bulk data links (default: --listen port + 1; off)");
  app.add_option("--data-link-cipher", over.dataLinkCipher,
                 "frame cipher of data links: auto (AES-128-OCB when the peer offers it, else AES-128-GCM) or "
                 "aes-128-gcm");
  app.add_option("--criu-held-pages", over.criuHeldPages,
                 "pre-copy's dump leaves out the pages the target holds: auto (when CRIU was built with lxmig's "
                 "patch) or off");
  app.add_option("--idmap", over.idmap,
                 "BASE:SIZE host ids for containers with a user namespace of their own (default 100000:65536), "
                 "or off");
  app.add_option("--log-level", over.logLevel, "debug|info|warn|error");
  app.add_option("--source-silence", over.sourceSilence,
                 "seconds before an incoming migration with a silent source is settled here (default 120)");
  app.add_option("--images-tmpfs-size", over.imagesTmpfsSize, "size of the tmpfs for CRIU images (0: none)");
  app.add_option("--images-disk-dir", over.imagesDiskDir,
                 "directory on disk for incoming images the tmpfs cannot hold (default <state-dir>/images-disk; off)");
  app.add_option("--hold-queue", over.holdQueue,
                 "NFQUEUE where packets for a frozen container wait (0..65535), or off (dropped)");
  app.add_option("--firewall", over.firewall,
                 "open (policy accept) or strict (drop all but established flows and "
                 "what container rules accept)");
  app.add_option("--devices", over.devices,
                 "devices offered to containers: PATH or CLASS=PATH, space-separated "
                 "(default: every device node under /dev; \"none\": nothing)");
  app.add_option("--fail-at", over.failAt,
                 "testing: make this step fail on this node (conntrack-import, criu-dump, adopt-restore, "
                 "adopt-crash, merge-restore, merge-crash)")
      ->check(CLI::IsMember(
          {"conntrack-import", "criu-dump", "adopt-restore", "adopt-crash", "merge-restore", "merge-crash"}))
      ->group("");  // hidden
  std::string probe;
  app.add_option("--probe", probe,
                 "check that the agent at host:port accepts this node's TLS identity (GetNode over mutual TLS), "
                 "then exit");
  std::string checkConfig;
  app.add_option("--check-config", checkConfig,
                 "report every unknown key and bad value of this agent config (and its cluster file), one line "
                 "each, then exit: 0 when there is none");
  app.set_version_flag("--version", std::string("lxmigd ") + LXMIG_VERSION);
  CLI11_PARSE(app, argc, argv);
  if (!checkConfig.empty()) return printConfigCheck(checkConfig);

  AgentConfig cfg;
  if (!configPath.empty()) {
    AgentConfig::Report report;
    auto r = AgentConfig::load(configPath, &report);
    if (r.ok() && !report.problems.empty()) r = invalidArgument(report.problems.front());
    if (!r.ok()) {
      std::fprintf(stderr, "lxmigd: %s\n", r.status().message().c_str());
      return 2;
    }
    for (const auto& w : report.warnings) LXMIG_LOG(kWarn, "agent") << w;
    cfg = *r;
  }
  // Flags given explicitly win over the file.
  auto pick = [&](const char* flag, std::string& dst, const std::string& src) {
    if (app.count(flag)) dst = src;
  };
  pick("--node", cfg.node, over.node);
  pick("--listen", cfg.listen, over.listen);
  pick("--socket", cfg.socket, over.socket);
  pick("--state-dir", cfg.stateDir, over.stateDir);
  pick("--lxc-path", cfg.lxcPath, over.lxcPath);
  pick("--cgroup-parent", cfg.cgroupParent, over.cgroupParent);
  pick("--bridge", cfg.bridge, over.bridge);
  pick("--fabric-if", cfg.fabricIf, over.fabricIf);
  pick("--container-subnet", cfg.containerSubnet, over.containerSubnet);
  pick("--cluster-prefix", cfg.clusterPrefix, over.clusterPrefix);
  pick("--gateway", cfg.gateway, over.gateway);
  pick("--cluster", cfg.clusterFile, over.clusterFile);
  pick("--tls-ca", cfg.tlsCa, over.tlsCa);
  pick("--tls-cert", cfg.tlsCert, over.tlsCert);
  pick("--tls-key", cfg.tlsKey, over.tlsKey);
  pick("--data-listen", cfg.dataListen, over.dataListen);
  pick("--log-level", cfg.logLevel, over.logLevel);
  pick("--images-tmpfs-size", cfg.imagesTmpfsSize, over.imagesTmpfsSize);
  pick("--images-disk-dir", cfg.imagesDiskDir, over.imagesDiskDir);
  pick("--firewall", cfg.firewall, over.firewall);
  pick("--hold-queue", cfg.holdQueue, over.holdQueue);
  pick("--fail-at", cfg.failAt, over.failAt);
  pick("--devices", cfg.devices, over.devices);
  pick("--source-silence", cfg.sourceSilence, over.sourceSilence);
  pick("--data-link-cipher", cfg.dataLinkCipher, over.dataLinkCipher);
  pick("--criu-held-pages", cfg.criuHeldPages, over.criuHeldPages);
  pick("--idmap", cfg.idmap, over.idmap);
  if (cfg.lxcPath.empty()) cfg.lxcPath = cfg.stateDir + "/lxc";
  if (!probe.empty()) return probePeer(probe, cfg);
  if (auto st = cfg.validate(); !st.ok()) {
    std::fprintf(stderr, "lxmigd: %s\n", st.message().c_str());
    return 2;
  }
  log::Level lvl;
  if (log::parseLevel(cfg.logLevel, &lvl)) log::setLevel(lvl);
  // Under systemd, lines go to the journal with their fields; either way the
  // last ones stay in memory for `lxmig logs`.
  log::useJournalIfStderrIsJournal();
  log::keepRecent(10000);
  // Before any thread: CRIU's kernel probes, cached (node/criu_cache.h).
  LXMIG_LOG(kInfo, "agent") << keepCriuKerndat();
  if (cfg.criuHeldPages == "off")
    LXMIG_LOG(kInfo, "agent") << "pre-copy: CRIU drains every page (criu_held_pages = off)";
  else if (criuLeavesOutHeldPages())
    LXMIG_LOG(kInfo, "agent") << "pre-copy: CRIU leaves out the pages the target holds (lxmig's patch)";
  else
    LXMIG_LOG(kWarn, "agent") << "pre-copy: this CRIU lacks lxmig's patch; its dump drains every page (a longer "
                                 "frozen window: scripts/setup.sh builds the patched one)";

  // Signals go to one thread; block them before gRPC starts its threads.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto nodeR = Node::create(cfg);
  if (!nodeR.ok()) {
    std::fprintf(stderr, "lxmigd: %s\n", nodeR.status().message().c_str());
    return 1;
  }
  Node& node = **nodeR;
  if (auto st = mountImagesTmpfs(node.imagesRoot(), cfg.imagesTmpfsSize); !st.ok()) {
    std::fprintf(stderr, "lxmigd: %s\n", st.message().c_str());
    return 1;
  }
  AgentService service(node);
  PeerService peerService(node, service);
  service.target().cleanupStale();
  if (int n = migration::settleAdoptions(node); n > 0)
    LXMIG_LOG(kWarn, "agent") << n << " adoption(s) interrupted by an agent restart were settled";
  if (int n = migration::settleMerges(node); n > 0)
    LXMIG_LOG(kWarn, "agent") << n << " merge(s) interrupted by an agent restart were settled";
  if (auto n = node.audit().failInterrupted(wallMs()); n.ok() && *n > 0) {
    LXMIG_LOG(kWarn, "agent") << *n << " migration(s) were interrupted by an agent restart";
  }

  std::string sockDir = cfg.socket.substr(0, cfg.socket.rfind('/'));
  if (auto st = makeDirs(sockDir, 0700); !st.ok()) {
    std::fprintf(stderr, "lxmigd: %s\n", st.message().c_str());
    return 1;
  }
  ::unlink(cfg.socket.c_str());
  // Bulk data of incoming migrations (agent/data_link.h). Bound first: a
  // port that is taken stops the start before the CLI's socket appears.
  std::unique_ptr<DataServer> dataServer;
  if (std::string addr = cfg.dataAddress(); !addr.empty()) {
    auto ds = DataServer::start(
        node.tlsIdentity(), addr,
        [&node](const std::vector<std::string>& names) { return node.identifyPeer(names, "data link"); },
        [&service](const std::string& peer, const ChunkSource& next) {
          return service.target().receive(peer, next, false);
        });
    if (!ds.ok()) {
      std::fprintf(stderr, "lxmigd: data link: %s\n", ds.status().message().c_str());
      return 1;
    }
    dataServer = std::move(*ds);
    node.setDataPort(dataServer->port());
    LXMIG_LOG(kInfo, "agent") << "data links on " << addr.substr(0, addr.rfind(':') + 1) << dataServer->port()
                              << " (mTLS)";
  }
  // Two servers, one service each: the operator's on the local socket
  // only, the peers' on TCP with mutual TLS only (docs/security.md).
  auto builderFor = [](grpc::ServerBuilder& b) {
    b.SetMaxReceiveMessageSize(kMaxMessageBytes);
    b.SetMaxSendMessageSize(kMaxMessageBytes);
    // No SO_REUSEPORT: a second listener on the port (another agent, or a
    // process that inherited this one's socket) must fail the start, not
    // take a share of the connections and never answer them.
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Peers ping every 10 s during a call (node.cc): allow it.
    b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  };
  std::unique_ptr<grpc::Server> peerServer;
  if (!cfg.listen.empty()) {
    grpc::ServerBuilder pb;
    builderFor(pb);
    int tcpPort = 0;
    pb.AddListeningPort(cfg.listen, node.serverCredentials(), &tcpPort);
    pb.RegisterService(&peerService);
    peerServer = pb.BuildAndStart();
    if (!peerServer || tcpPort == 0) {
      std::fprintf(stderr, "lxmigd: cannot listen on %s\n", cfg.listen.c_str());
      return 1;
    }
  }
  grpc::ServerBuilder builder;
  builderFor(builder);
  builder.AddListeningPort("unix:" + cfg.socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "lxmigd: cannot listen on %s\n", cfg.socket.c_str());
    ::unlink(cfg.socket.c_str());
    if (peerServer) peerServer->Shutdown();
    return 1;
  }
  // The local socket is the CLI's: root only.
  ::chmod(cfg.socket.c_str(), 0600);
  LXMIG_LOG(kInfo, "agent") << "node " << cfg.node << " serving on " << cfg.socket
                            << (cfg.listen.empty() ? "" : " and " + cfg.listen + " (mTLS)");
  std::atomic<int> frozenLeft{-1};  // -1: recovery not done yet
  std::thread recovery([&] { frozenLeft = recoverAfterRestart(node, service.frozen()); });
  LXMIG_LOG(kInfo, "agent") << "owns " << node.lxc().list().size() << " container(s)";

  std::atomic<bool> stopping{false};
  std::thread reaper([&] {
    while (!stopping) {
      for (int i = 0; i < 50 && !stopping; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      service.target().reapIdle(int64_t{cfg.sourceSilenceSeconds()} * 1000);
      node.sampleLoad();  // every 5 s: containers' CPU rates for the scheduler
      node.expireForwarding();
      // Frozen copies left undecided (a peer unreachable or still migrating
      // the container in) and those a migration left frozen since: again.
      if (frozenLeft >= 0 && (frozenLeft > 0 || node.takeFrozenCheck())) frozenLeft = service.frozen().settle();
    }
  });
  // Retention: every hour, the audit rows older than audit_retention go,
  // in small batches (a migration's writes wait for one batch at most).
  std::thread retention([&] {
    const int64_t keepMs = cfg.auditRetentionMs();
    if (keepMs <= 0) return;
    int64_t dueNs = 0;
    while (!stopping) {
      if (monotonicNs() >= dueNs) {
        pruneAudit(node.audit(), wallMs() - keepMs, stopping);
        dueNs = monotonicNs() + int64_t{3600} * 1000000000;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  std::thread sigThread([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    LXMIG_LOG(kInfo, "agent") << "signal " << sig << ": shutting down (containers keep running)";
    const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
    if (peerServer) peerServer->Shutdown(deadline);
    server->Shutdown(deadline);
  });
  server->Wait();
  if (peerServer) peerServer->Wait();
  // Detached migrations: cancelled (rolled back) unless past the restore's
  // request, where they run to their end; joined either way.
  service.stopDetached();
  stopping = true;
  sigThread.join();
  reaper.join();
  retention.join();
  recovery.join();
  node.setDataPort(0);
  dataServer.reset();
  ::unlink(cfg.socket.c_str());
  if (cfg.imagesTmpfsSize != "0") ::umount2(node.imagesRoot().c_str(), MNT_DETACH);
  LXMIG_LOG(kInfo, "agent") << "stopped";
  return 0;
}
