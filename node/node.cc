#include "lxmig/node/node.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/process.h"
#include "lxmig/net/conntrack.h"
#include "lxmig/net/cutover.h"
#include "lxmig/proto/rpc_status.h"

namespace lxmig::node {

using container::Bind;
using container::ContainerParams;
using container::DeviceParam;
using container::RunState;
using container::runStateName;
namespace devices = container::devices;

using nlohmann::json;

// Each container's workload starts at a multiple of this pid (pickPidBase).
constexpr uint32_t kPidRange = 1000;
// How long `run` watches a new container before it reports it running.
constexpr int kStartSettleMs = 200;

v1::ContainerSpec Spec::toProto() const {
  v1::ContainerSpec p;
  p.set_name(name);
  p.set_ip(ip);
  p.set_hwaddr(hwaddr);
  p.set_origin_node(originNode);
  p.set_created_ms(createdMs);
  p.set_pinned(pinned);
  p.set_lxmig_init(lxmigInit);
  p.set_pid_base(pidBase);
  p.set_idmap_base(idmapBase);
  p.set_idmap_size(idmapSize);
  for (const auto& a : extraIps) p.add_extra_ips(a);
  for (const auto& c : command) p.add_command(c);
  for (const auto& e : env) p.add_env(e);
  for (const auto& d : devices) {
    auto* x = p.add_devices();
    x->set_host_path(d.hostPath);
    x->set_container_path(d.containerPath);
  }
  for (const auto& b : binds) {
    auto* m = p.add_binds();
    m->set_host_path(b.hostPath);
    m->set_container_path(b.containerPath);
    m->set_read_only(b.readOnly);
  }
  return p;
}

Spec Spec::fromProto(const v1::ContainerSpec& p) {
  Spec s;
  s.name = p.name();
  s.ip = p.ip();
  s.hwaddr = p.hwaddr();
  s.originNode = p.origin_node();
  s.createdMs = p.created_ms();
  s.pinned = p.pinned();
  s.lxmigInit = p.lxmig_init();
  s.pidBase = p.pid_base();
  s.idmapBase = p.idmap_base();
  s.idmapSize = p.idmap_size();
  s.extraIps.assign(p.extra_ips().begin(), p.extra_ips().end());
  s.command.assign(p.command().begin(), p.command().end());
  s.env.assign(p.env().begin(), p.env().end());
  for (const auto& b : p.binds()) s.binds.push_back({b.host_path(), b.container_path(), b.read_only()});
  for (const auto& d : p.devices()) s.devices.push_back({d.host_path(), d.container_path()});
  return s;
}

std::string Spec::toJson() const {
  json j = {{"name", name},
            {"ip", ip},
            {"hwaddr", hwaddr},
            {"origin_node", originNode},
            {"created_ms", createdMs},
            {"command", command},
            {"env", env},
            {"pinned", pinned},
            {"lxmig_init", lxmigInit},
            {"pid_base", pidBase},
            {"idmap_base", idmapBase},
            {"idmap_size", idmapSize},
            {"extra_ips", extraIps}};
  j["binds"] = json::array();
  for (const auto& b : binds)
    j["binds"].push_back({{"host", b.hostPath}, {"container", b.containerPath}, {"ro", b.readOnly}});
  j["devices"] = json::array();
  for (const auto& d : devices) j["devices"].push_back({{"host", d.hostPath}, {"container", d.containerPath}});
  return j.dump(2) + "\n";
}

Result<Spec> Spec::fromJson(const std::string& text) try {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("malformed lxmig.json");
  Spec s;
  s.name = j.value("name", "");
  s.ip = j.value("ip", "");
  s.hwaddr = j.value("hwaddr", "");
  s.originNode = j.value("origin_node", "");
  s.createdMs = j.value("created_ms", int64_t{0});
  s.command = j.value("command", std::vector<std::string>{});
  s.env = j.value("env", std::vector<std::string>{});
  s.pinned = j.value("pinned", false);
  s.lxmigInit = j.value("lxmig_init", false);
  s.pidBase = j.value("pid_base", uint32_t{0});
  s.idmapBase = j.value("idmap_base", uint32_t{0});
  s.idmapSize = j.value("idmap_size", uint32_t{0});
  s.extraIps = j.value("extra_ips", std::vector<std::string>{});
  for (const auto& b : j.value("binds", json::array()))
    s.binds.push_back({b.value("host", ""), b.value("container", ""), b.value("ro", true)});
  for (const auto& d : j.value("devices", json::array()))
    s.devices.push_back({d.value("host", ""), d.value("container", "")});
  if (s.name.empty() || s.ip.empty()) return invalidArgument("lxmig.json lacks name or ip");
  LXMIG_RETURN_IF_ERROR(s.check().withContext("lxmig.json"));
  return s;
} catch (const json::exception& e) {  // a field of the wrong type
  return invalidArgument(std::string("malformed lxmig.json: ") + e.what());
}

namespace {

// NAME=value for the workload's environment.
Status checkEnv(const std::string& e) {
  const auto eq = e.find('=');
  if (eq == std::string::npos || eq == 0)
    return invalidArgument("bad environment entry " + quote(e) + ": NAME=value wanted");
  for (size_t i = 0; i < eq; ++i) {
    const char c = e[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_') ||
        (i == 0 && std::isdigit(static_cast<unsigned char>(c))))
      return invalidArgument("bad environment variable name " + quote(e.substr(0, eq)) +
                             ": letters, digits and '_', not starting with a digit");
  }
  return checkPlainText(e, "environment entry");
}

Status checkMac(const std::string& mac) {
  bool ok = mac.size() == 17;
  for (size_t i = 0; ok && i < mac.size(); ++i)
    ok = i % 3 == 2 ? mac[i] == ':' : std::isxdigit(static_cast<unsigned char>(mac[i])) != 0;
  return ok ? okStatus() : invalidArgument("bad MAC address " + quote(mac));
}

Status checkIpv4(const std::string& ip) {
  in_addr a{};
  return ::inet_pton(AF_INET, ip.c_str(), &a) == 1 ? okStatus() : invalidArgument("bad IPv4 address " + quote(ip));
}

constexpr size_t kMaxArgs = 4096;
constexpr size_t kMaxCommandBytes = 128 * 1024;
constexpr size_t kMaxExtraIps = 63;  // a merge takes at most 64 containers

}  // namespace

Status Spec::check() const {
  LXMIG_RETURN_IF_ERROR(checkContainerName(name));
  LXMIG_RETURN_IF_ERROR(checkIpv4(ip));
  if (extraIps.size() > kMaxExtraIps)
    return invalidArgument("`" + name + "` has " + std::to_string(extraIps.size()) + " addresses besides " + ip +
                           " (at most " + std::to_string(kMaxExtraIps) + ")");
  for (size_t i = 0; i < extraIps.size(); ++i) {
    LXMIG_RETURN_IF_ERROR(checkIpv4(extraIps[i]));
    if (extraIps[i] == ip || std::find(extraIps.begin(), extraIps.begin() + i, extraIps[i]) != extraIps.begin() + i)
      return invalidArgument("address " + extraIps[i] + " of `" + name + "` is named twice");
  }
  if (!hwaddr.empty()) LXMIG_RETURN_IF_ERROR(checkMac(hwaddr));
  if (!originNode.empty()) LXMIG_RETURN_IF_ERROR(checkNodeName(originNode));
  size_t bytes = 0;
  for (const auto& c : command) bytes += c.size() + 1;
  if (command.size() > kMaxArgs || bytes > kMaxCommandBytes)
    return invalidArgument("command of `" + name + "` too long (at most 4096 arguments, 128 KiB)");
  for (const auto& e : env) LXMIG_RETURN_IF_ERROR(checkEnv(e));
  for (const auto& b : binds) {
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.hostPath).withContext("bind source"));
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.containerPath).withContext("bind target"));
  }
  for (const auto& d : devices) {
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(d.hostPath).withContext("device"));
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(d.containerPath).withContext("device path in the container"));
  }
  if (pidBase >= (1u << 22))
    return invalidArgument("pid base " + std::to_string(pidBase) + " of `" + name + "` is out of range");
  if ((idmapBase == 0) != (idmapSize == 0) || (idmapSize > 0 && idmapSize < 65536) ||
      uint64_t{idmapBase} + idmapSize > (uint64_t{1} << 32) - 1)
    return invalidArgument("id map " + std::to_string(idmapBase) + ":" + std::to_string(idmapSize) + " of `" + name +
                           "` is out of range (base >= 1, at least 65536 ids, below 2^32-1)");
  return okStatus();
}

std::string Node::imagesDiskRoot() const {
  if (cfg_.imagesDiskDir == "off") return "";
  return cfg_.imagesDiskDir.empty() ? cfg_.stateDir + "/images-disk" : cfg_.imagesDiskDir;
}

Result<std::unique_ptr<Node>> Node::create(const AgentConfig& cfg) {
  std::unique_ptr<Node> n(new Node(cfg));
  LXMIG_RETURN_IF_ERROR(makeDirs(cfg.stateDir, 0700));
  LXMIG_RETURN_IF_ERROR(makeDirs(cfg.lxcPath, 0700));
  LXMIG_RETURN_IF_ERROR(makeDirs(n->imagesRoot(), 0700));
  if (!n->imagesDiskRoot().empty()) LXMIG_RETURN_IF_ERROR(makeDirs(n->imagesDiskRoot(), 0700));
  LXMIG_RETURN_IF_ERROR(makeDirs(n->incomingRoot(), 0700));
  LXMIG_ASSIGN_OR_RETURN(n->audit_, store::AuditLog::open(cfg.stateDir + "/audit.db"));
  if (pathExists(cfg.clusterFile)) {
    LXMIG_ASSIGN_OR_RETURN(n->cluster_, ClusterConfig::load(cfg.clusterFile));
  } else {
    LXMIG_LOG(kWarn, "node") << "no cluster file at " << cfg.clusterFile << ": this node knows no peers";
  }
  LXMIG_RETURN_IF_ERROR(n->initFirewall());
  if (n->cluster_.store.enabled()) {
    LXMIG_ASSIGN_OR_RETURN(n->membership_, sched::Membership::start(n->cluster_.store, cfg.node, cfg.listen));
  }
  if (!cfg.tlsCa.empty()) {
    LXMIG_ASSIGN_OR_RETURN(n->caPem_, readFile(cfg.tlsCa));
    LXMIG_ASSIGN_OR_RETURN(n->certPem_, readFile(cfg.tlsCert));
    LXMIG_ASSIGN_OR_RETURN(n->keyPem_, readFile(cfg.tlsKey));
  }
  return n;
}

// The lxmig table: base chain as configured, a chain for every container of
// this node, none for containers that are gone (removed while the agent was
// down, or left by a crash mid-migration).
Status Node::initFirewall() {
  auto fw = net::Firewall::open(cfg_.firewallTable);
  if (!fw.ok()) return fw.status();
  fw_ = std::make_unique<net::Firewall>(std::move(*fw));
  if (const int q = cfg_.holdQueueNumber(); q >= 0) {
    auto hold = net::PacketHold::open(static_cast<uint16_t>(q));
    if (hold.ok()) hold_ = std::move(*hold);
    else
      LXMIG_LOG(kWarn, "node") << hold.status().toString()
                               << "; packets for frozen containers are dropped (clients retransmit)";
  }
  LXMIG_RETURN_IF_ERROR(fw_->ensureBase(
      {.strict = cfg_.firewall == "strict", .bridge = cfg_.bridge, .holdQueue = hold_ ? hold_->queue() : -1}));
  if (hold_ && !fw_->holds()) {
    LXMIG_LOG(kWarn, "node") << fw_->holdError() << "; packets for frozen containers are dropped (clients retransmit)";
    hold_.reset();
  }
  // Routes a previous run left toward containers that moved on.
  if (Status st = net::flushForwardRoutes(); !st.ok()) LXMIG_LOG(kWarn, "node") << st.toString();
  std::set<std::string> local;
  for (const auto& name : lxc_.list()) {
    auto s = spec(name);
    if (!s.ok()) continue;
    local.insert(name);
    for (const auto& a : s->addresses())
      if (auto st = fw_->addContainer(s->name, a); !st.ok()) LXMIG_LOG(kWarn, "node") << st.toString();
  }
  auto chains = fw_->containers();
  if (chains.ok())
    for (const auto& c : *chains)
      if (!local.count(c)) {
        LXMIG_LOG(kInfo, "node") << "removing firewall chain of `" << c << "`: no such container here";
        (void)fw_->removeContainer(c);
      }
  return okStatus();
}

void Node::dropNetState(const Spec& s) {
  if (auto st = fw_->removeContainer(s.name); !st.ok()) LXMIG_LOG(kWarn, "node") << st.toString();
  if (auto n = net::deleteConntrack(s.addresses()); !n.ok()) LXMIG_LOG(kWarn, "node") << n.status().toString();
  for (const auto& a : s.addresses())
    if (Status st = net::forgetNeighbour({a, cfg_.bridge, cfg_.fabricIf}); !st.ok())
      LXMIG_LOG(kWarn, "node") << st.toString();
}

// "80", "80/tcp", "53/udp" -> an nft rule accepting it.
static Result<std::string> publishRule(const std::string& spec) {
  std::string port = spec, proto = "tcp";
  if (auto slash = spec.find('/'); slash != std::string::npos) {
    port = spec.substr(0, slash);
    proto = spec.substr(slash + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 1 || p > 65535 || (proto != "tcp" && proto != "udp"))
    return invalidArgument("bad --publish " + quote(spec) + " (PORT or PORT/tcp or PORT/udp)");
  return proto + " dport " + std::to_string(p) + " accept";
}

std::shared_ptr<grpc::ServerCredentials> Node::serverCredentials() const {
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = caPem_;
  o.pem_key_cert_pairs.push_back({keyPem_, certPem_});
  return grpc::SslServerCredentials(o);
}

Node::Inventory Node::inventory() const {
  Inventory inv{cluster_.nodes, {}, {}, ""};
  for (const auto& [name, p] : cluster_.nodes) inv.inFile.insert(name);
  if (!membership_) return inv;
  // Read by the membership's own thread every second: never waits for etcd.
  const sched::Membership::Snapshot live = membership_->snapshot();
  inv.storeError = live.error;
  for (const auto& [name, address] : live.members) {
    PeerInfo& p = inv.nodes[name];
    p.name = name;
    p.address = address;
    inv.live.insert(name);
  }
  return inv;
}

std::vector<std::string> Node::peerNames() const {
  std::vector<std::string> out;
  const Inventory inv = inventory();
  for (const auto& [name, p] : inv.nodes)
    if (name != cfg_.node && (!membership_ || inv.live.count(name) || !p.address.empty())) out.push_back(name);
  return out;
}

Result<std::string> Node::peerHost(const std::string& node) const {
  const Inventory inv = inventory();
  auto it = inv.nodes.find(node);
  if (it == inv.nodes.end()) return notFound("unknown node `" + node + "`");
  LXMIG_ASSIGN_OR_RETURN(auto hp, splitHostPort(it->second.address));
  return hp.first;
}

Result<std::string> Node::identifyPeer(const std::vector<std::string>& names, const std::string& via) {
  std::set<std::string> matched;
  const Inventory inv = inventory();
  for (const auto& n : names)
    if (inv.nodes.count(n)) matched.insert(n);
  std::string shown;
  for (const auto& n : names) shown += (shown.empty() ? "" : ", ") + n.substr(0, 64);
  std::string why;
  if (matched.empty())
    why = "its certificate (" + (shown.empty() ? std::string("no names") : shown) + ") names no node of the cluster";
  else if (matched.size() > 1) why = "its certificate names several nodes (" + shown + ")";
  else if (*matched.begin() == cfg_.node) why = "its certificate names this node, " + cfg_.node;
  if (why.empty()) return *matched.begin();
  LXMIG_LOG(kWarn, "node") << "peer refused on the " << via << ": " << why;
  store::NodeEvent e;
  e.level = "warn";
  e.kind = "peer-refused";
  e.peer = shown.substr(0, 200);
  e.text = "refused on the " + via + ": " + why;
  if (Status st = audit_->addNodeEvent(e); !st.ok()) LXMIG_LOG(kWarn, "node") << "audit: " << st.toString();
  return Status(Code::kPermissionDenied, "peer refused: " + why);
}

Result<std::unique_ptr<v1::Peer::Stub>> Node::peer(const std::string& node) {
  const Inventory inv = inventory();
  auto it = inv.nodes.find(node);
  if (it == inv.nodes.end())
    return notFound("unknown node `" + node + "`" +
                    (membership_ ? " (not in the cluster file, and not registered in etcd)" : ""));
  if (it->second.address.empty())
    return failedPrecondition("node `" + node + "` has no peer address" +
                              (membership_ ? " (not registered in etcd: its agent is down or cannot reach etcd)" : ""));
  if (caPem_.empty()) return failedPrecondition("this agent has no TLS identity to talk to peers");
  std::lock_guard lk(mu_);
  // Keyed by address too: a node registered again elsewhere gets a new channel.
  auto& ch = channels_[node + "@" + it->second.address];
  if (!ch) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = caPem_;
    o.pem_private_key = keyPem_;
    o.pem_cert_chain = certPem_;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    args.SetMaxSendMessageSize(16 << 20);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A peer that vanishes mid-call (power loss, partition) is noticed in
    // seconds, not when TCP gives up.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    ch = grpc::CreateCustomChannel(it->second.address, grpc::SslCredentials(o), args);
  }
  return v1::Peer::NewStub(ch);
}

Result<v1::ListContainersReply> Node::peerContainers(const std::string& node, int seconds) {
  LXMIG_ASSIGN_OR_RETURN(auto stub, peer(node));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  v1::ListContainersRequest rq;
  rq.set_node(node);
  v1::ListContainersReply rp;
  LXMIG_RETURN_IF_ERROR(fromGrpc(stub->ListContainers(&ctx, rq, &rp)).withContext("list containers of " + node));
  return rp;
}

Status Node::beginMemoryFill(const std::string& name, const std::string& migrationId, pid_t daemon,
                             const std::string& imagesDir) {
  LXMIG_RETURN_IF_ERROR(makeDirs(cfg_.stateDir + "/fills", 0700));
  const std::string text =
      "pid=" + std::to_string(daemon) + "\nmigration=" + migrationId + "\nimages=" + imagesDir + "\n";
  return writeFileAtomic(fillMarker(name), text, 0600);
}

void Node::endMemoryFill(const std::string& name) { ::unlink(fillMarker(name).c_str()); }

std::optional<Node::MemoryFill> Node::memoryFill(const std::string& name) {
  auto text = readFile(fillMarker(name));
  if (!text.ok()) return std::nullopt;
  MemoryFill f;
  std::string images;
  for (const auto& line : split(*text, '\n')) {
    if (startsWith(line, "pid=")) f.pid = static_cast<pid_t>(std::atoi(line.c_str() + 4));
    else if (startsWith(line, "migration=")) f.migrationId = line.substr(10);
    else if (startsWith(line, "images=")) images = line.substr(7);
  }
  // The daemon is alive when its pid still runs `criu lazy-pages` on those
  // images (a recycled pid runs something else).
  auto cmd = f.pid > 0 ? readFile("/proc/" + std::to_string(f.pid) + "/cmdline") : Result<std::string>(notFound(""));
  if (cmd.ok()) {
    std::replace(cmd->begin(), cmd->end(), '\0', ' ');
    if (cmd->find("lazy-pages") != std::string::npos && cmd->find(images) != std::string::npos) return f;
  }
  LXMIG_LOG(kInfo, "node") << "memory of `" << name << "` has arrived (lazy-pages daemon of migration " << f.migrationId
                           << " is gone)";
  endMemoryFill(name);
  return std::nullopt;
}

Result<Spec> Node::spec(const std::string& name) {
  LXMIG_RETURN_IF_ERROR(checkContainerName(name));
  auto text = readFile(lxc_.dir(name) + "/lxmig.json");
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return notFound("no container `" + name + "` on node " + cfg_.node);
    return text.status();
  }
  LXMIG_ASSIGN_OR_RETURN(Spec s, Spec::fromJson(*text));
  if (s.name != name) return invalidArgument("lxmig.json of `" + name + "` names `" + s.name + "`");
  return s;
}

Result<bool> Node::setPinned(const std::string& name, bool pinned) {
  LXMIG_ASSIGN_OR_RETURN(Spec s, spec(name));
  LXMIG_ASSIGN_OR_RETURN(Reservation busy, reserve(name, pinned ? "being pinned" : "being unpinned"));
  const bool was = s.pinned;
  s.pinned = pinned;
  LXMIG_RETURN_IF_ERROR(saveSpec(s));
  return was;
}

Status Node::saveSpec(const Spec& s) { return writeFileAtomic(lxc_.dir(s.name) + "/lxmig.json", s.toJson(), 0600); }

Result<std::vector<devices::Device>> Node::deviceOffer() const {
  if (cfg_.devices == "none") return std::vector<devices::Device>{};
  return devices::parseOffer(cfg_.devices);
}

Result<std::vector<devices::Device>> Node::deviceNeeds(const std::string& name) {
  LXMIG_ASSIGN_OR_RETURN(Spec s, spec(name));
  return deviceNeedsOf(s);
}

Result<std::vector<devices::Device>> Node::deviceNeedsOf(const Spec& s) {
  auto config = readFile(lxc_.dir(s.name) + "/config");
  std::vector<pid_t> pids;
  if (auto p = lxc_.pids(s.name); p.ok()) pids = *p;
  return devices::requirements(s.devices, config.ok() ? *config : "", pids);
}

ContainerParams Node::paramsFor(const Spec& s) const {
  ContainerParams p;
  for (const auto& d : s.devices) {
    DeviceParam dp;
    dp.containerPath = d.containerPath;
    dp.hostPath = d.hostPath;
    if (auto st = devices::statDevice(dp.hostPath); st.ok()) {
      dp.type = st->type;
      dp.major = st->major;
      dp.minor = st->minor;
    }
    p.devices.push_back(std::move(dp));
  }
  p.name = s.name;
  p.ip = s.ip;
  p.extraIps = s.extraIps;
  auto prefix = parseCidr(cfg_.clusterPrefix);
  p.prefixLen = prefix.ok() ? prefix->second : 16;
  p.gateway = cfg_.gateway;
  p.hwaddr = s.hwaddr;
  p.bridge = cfg_.bridge;
  p.binds = s.binds;
  p.env = s.env;
  p.idmapBase = s.idmapBase;
  p.idmapSize = s.idmapSize;
  return p;
}

Status Node::claimAddress(const Spec& s) {
  for (const auto& a : s.addresses()) {
    // An address this node forwarded to the container's last node: its
    // chain applies again (an nftables call only then: this runs in the
    // frozen window of a migration in).
    size_t wasForwarded = 0;
    {
      std::lock_guard lk(forwardMu_);
      wasForwarded = std::erase_if(forwarded_, [&](const Forwarded& f) { return f.ip == a; });
    }
    if (wasForwarded) LXMIG_RETURN_IF_ERROR(fw_->endForwarding(a));
    LXMIG_RETURN_IF_ERROR(net::claimAddress({a, cfg_.bridge, cfg_.fabricIf}));
  }
  return okStatus();
}

Status Node::holdTraffic(const std::string& ip) {
  if (hold_) hold_->holdAgain(ip);
  return fw_->block(ip);  // ends a forwarding of ip too
}

Status Node::resumeTraffic(const std::string& ip) {
  Status st = fw_->unblock(ip);
  if (hold_) hold_->release(ip, net::PacketHold::Verdict::kAccept, true);
  return st;
}

Status Node::forgetTraffic(const std::string& ip) {
  Status st = fw_->unblock(ip);
  if (hold_) hold_->release(ip, net::PacketHold::Verdict::kDrop, true);
  return st;
}

Result<size_t> Node::forwardTraffic(const Spec& s, const std::string& toNode) {
  if (!hold_) return size_t{0};
  // Only toward a node whose address is on the fabric: anything else would
  // send the waiting packets along whatever route the node has, or none.
  auto via = peerHost(toNode);
  in_addr a{};
  if (!via.ok() || ::inet_pton(AF_INET, via->c_str(), &a) != 1 || cfg_.fabricIf.empty()) {
    size_t dropped = 0;
    for (const auto& ip : s.addresses()) dropped += hold_->release(ip, net::PacketHold::Verdict::kDrop, true);
    return failedPrecondition("no fabric route to `" + toNode + "` (" + (via.ok() ? *via : via.status().message()) +
                              "): " + std::to_string(dropped) + " waiting packet(s) dropped");
  }
  size_t n = 0;
  Status failed;
  for (const auto& ip : s.addresses()) {
    Status st = net::routeVia({ip, cfg_.bridge, cfg_.fabricIf}, *via);
    if (st.ok()) {
      std::lock_guard lk(forwardMu_);
      std::erase_if(forwarded_, [&](const Forwarded& f) { return f.ip == ip; });
      forwarded_.push_back({ip, *via, monotonicNs() + int64_t{kForwardSeconds} * 1'000'000'000});
    }
    if (st.ok()) st = fw_->forwardFor(ip, kForwardSeconds);
    // Without the route and the firewall's word they would go nowhere.
    n += hold_->release(ip, st.ok() ? net::PacketHold::Verdict::kAccept : net::PacketHold::Verdict::kDrop, true);
    if (!st.ok() && failed.ok()) failed = st;
  }
  if (!failed.ok()) return failed;
  return n;
}

void Node::expireForwarding() {
  std::vector<Forwarded> due;
  {
    std::lock_guard lk(forwardMu_);
    const int64_t now = monotonicNs();
    for (auto it = forwarded_.begin(); it != forwarded_.end();)
      if (it->untilNs <= now) {
        due.push_back(*it);
        it = forwarded_.erase(it);
      } else {
        ++it;
      }
  }
  // A route that was replaced since (the container came back) is not ours.
  for (const auto& f : due)
    if (Status st = net::unrouteVia({f.ip, cfg_.bridge, cfg_.fabricIf}, f.via); !st.ok())
      LXMIG_LOG(kWarn, "node") << st.toString();
}

Status Node::releaseAddress(const Spec& s) {
  Status first;
  for (const auto& a : s.addresses())
    if (Status st = net::releaseAddress({a, cfg_.bridge, cfg_.fabricIf}); !st.ok() && first.ok()) first = st;
  return first;
}

std::set<std::string> Node::readAway() const {
  std::set<std::string> out;
  for (const auto& l : split(readFile(awayPath()).value_or(""), '\n'))
    if (checkIpv4(std::string(trim(l))).ok()) out.insert(std::string(trim(l)));
  return out;
}

void Node::addressesLeft(const Spec& s) {
  std::lock_guard lk(awayMu_);
  std::set<std::string> away = readAway();
  for (const auto& a : s.addresses()) away.insert(a);
  std::string text;
  for (const auto& a : away) text += a + "\n";
  if (Status st = writeFileAtomic(awayPath(), text, 0600); !st.ok())
    LXMIG_LOG(kWarn, "node") << "record the addresses that left with `" << s.name << "`: " << st.toString();
}

uint32_t Node::pickPidBase(const std::string& forName) {
  // Ranges of kPidRange pids from kPidRange up to the kernel's pid_max; the
  // first tried is the name's (names are cluster-wide, so containers of
  // other nodes likely start elsewhere), then the next one no container of
  // this node uses. `lxmig merge` checks for collisions all the same.
  uint64_t pidMax = 32768;
  if (auto t = readFile("/proc/sys/kernel/pid_max"); t.ok()) (void)parseUint64(trim(*t), &pidMax);
  const uint32_t slots = static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(pidMax / kPidRange, 2) - 1, 4000));
  // Taken: each container's own range, and every range its processes use
  // (a merged container holds the ranges of those merged into it).
  std::set<uint32_t> used;
  for (const auto& n : lxc_.list()) {
    if (auto s = spec(n); s.ok() && s->pidBase) used.insert(s->pidBase);
    for (pid_t p : lxc_.pids(n).value_or(std::vector<pid_t>{}))
      if (pid_t in = container::innerPid(p); in >= static_cast<pid_t>(kPidRange))
        used.insert(static_cast<uint32_t>(in) / kPidRange * kPidRange);
  }
  const uint32_t first = static_cast<uint32_t>(std::hash<std::string>{}(forName) % slots);
  for (uint32_t i = 0; i < slots; ++i) {
    const uint32_t base = (1 + (first + i) % slots) * kPidRange;
    if (!used.count(base)) return base;
  }
  return (1 + first) * kPidRange;
}

Result<std::string> Node::allocateIp(const std::string& forName) {
  LXMIG_ASSIGN_OR_RETURN(auto pool, parseCidr(cfg_.containerSubnet));
  std::set<std::string> used;
  for (const auto& n : lxc_.list()) {
    auto s = spec(n);
    if (!s.ok()) continue;
    for (const auto& a : s->addresses()) used.insert(a);
  }
  // Addresses move with their containers, so a free address in this node's
  // pool may be in use elsewhere: ask the peers.
  std::set<std::string> elsewhere;
  bool allAnswered = true;
  for (const auto& p : peerNames()) {
    auto rp = peerContainers(p, 3);
    if (!rp.ok()) {
      LXMIG_LOG(kWarn, "node") << "allocating an address without knowing " << p
                               << "'s (addresses that left this node stay taken): " << rp.status().message();
      allAnswered = false;
      continue;
    }
    for (const auto& c : rp->containers()) {
      // Names are cluster-wide: `lxmig rm/exec/migrate NAME` find it by name.
      if (c.name() == forName) return alreadyExists("container `" + forName + "` already exists on " + p);
      elsewhere.insert(c.ip());
      elsewhere.insert(c.extra_ips().begin(), c.extra_ips().end());
    }
  }
  used.insert(elsewhere.begin(), elsewhere.end());
  {
    std::lock_guard lk(awayMu_);
    std::set<std::string> away = readAway();
    if (!allAnswered) {
      used.insert(away.begin(), away.end());
    } else if (!away.empty()) {
      // Every peer answered: an address no one holds is free again.
      std::string text;
      for (const auto& a : away)
        if (elsewhere.count(a)) text += a + "\n";
      (void)writeFileAtomic(awayPath(), text, 0600);
    }
  }
  uint32_t size = pool.second >= 32 ? 1 : (uint32_t{1} << (32 - pool.second));
  for (uint32_t i = 10; i + 1 < size; ++i) {
    std::string ip = ipToString(pool.first + i);
    if (ip == cfg_.gateway || used.count(ip)) continue;
    return ip;
  }
  return resourceExhausted("no free address in " + cfg_.containerSubnet);
}

Result<v1::ContainerInfo> Node::run(const v1::RunContainerRequest& req) {
  LXMIG_RETURN_IF_ERROR(checkContainerName(req.name()));
  if (req.command().empty()) return invalidArgument("no command given for container `" + req.name() + "`");
  LXMIG_ASSIGN_OR_RETURN(Reservation busy, reserve(req.name(), "being created"));
  return runReserved(req, busy);
}

Result<v1::ContainerInfo> Node::runWithInit(const v1::RunContainerRequest& req, const Reservation& held) {
  if (!held.held() || held.name() != req.name())
    return internalError("runWithInit `" + req.name() + "` without holding the name");
  v1::RunContainerRequest r = req;
  r.clear_command();
  r.add_command(container::LxcHost::kInitPath);
  return runReserved(r, held);
}

Result<v1::ContainerInfo> Node::runReserved(const v1::RunContainerRequest& req, const Reservation&) {
  LXMIG_RETURN_IF_ERROR(checkContainerName(req.name()));
  if (lxc_.defined(req.name())) return alreadyExists("container `" + req.name() + "` already exists on " + cfg_.node);
  Spec s;
  s.name = req.name();
  s.command.assign(req.command().begin(), req.command().end());
  s.env.assign(req.env().begin(), req.env().end());
  for (const auto& b : req.binds()) {
    if (b.host_path().empty() || b.host_path()[0] != '/' || b.container_path().empty() || b.container_path()[0] != '/')
      return invalidArgument("bind paths must be absolute: `" + b.host_path() + ":" + b.container_path() + "`");
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.host_path()));
    LXMIG_RETURN_IF_ERROR(checkAbsolutePath(b.container_path()));
    if (!pathExists(b.host_path()))
      return notFound("bind source `" + b.host_path() + "` does not exist on " + cfg_.node);
    s.binds.push_back({b.host_path(), b.container_path(), b.read_only()});
  }
  if (!req.devices().empty()) {
    LXMIG_ASSIGN_OR_RETURN(auto offer, deviceOffer());
    for (const auto& flag : req.devices()) {
      LXMIG_ASSIGN_OR_RETURN(auto b, devices::parseDeviceFlag(flag));
      LXMIG_ASSIGN_OR_RETURN(auto d, devices::statDevice(b.hostPath));
      bool offered = false;
      for (const auto& o : offer) offered = offered || (o.type == d.type && o.major == d.major && o.minor == d.minor);
      if (!offered)
        return failedPrecondition(cfg_.node + " does not offer " + d.id() + " " + b.hostPath +
                                  " to containers (agent config `devices`)");
      s.devices.push_back(std::move(b));
    }
  }
  if (req.userns() || cfg_.userns == "on") {
    const auto [base, size] = cfg_.idmapRange();
    if (size == 0)
      return failedPrecondition(cfg_.node +
                                " offers no ids for containers with a user namespace (agent config "
                                "`idmap` is off)");
    s.idmapBase = base;
    s.idmapSize = size;
  }
  const bool laterProcesses = s.command.size() == 1 && s.command[0] == container::LxcHost::kInitPath;
  s.lxmigInit = true;
  if (!laterProcesses) s.pidBase = pickPidBase(s.name);
  std::vector<std::string> rules;
  for (const auto& p : req.publish()) {
    LXMIG_ASSIGN_OR_RETURN(auto r, publishRule(p));
    rules.push_back(std::move(r));
  }
  LXMIG_ASSIGN_OR_RETURN(s.ip, allocateIp(req.name()));
  in_addr a{};
  ::inet_pton(AF_INET, s.ip.c_str(), &a);
  uint32_t h = ntohl(a.s_addr);
  char mac[32];
  std::snprintf(mac, sizeof mac, "02:4c:4d:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
  s.hwaddr = mac;
  s.originNode = cfg_.node;
  s.createdMs = wallMs();
  LXMIG_RETURN_IF_ERROR(s.check());

  Status st = lxc_.define(paramsFor(s));
  if (st.ok()) st = saveSpec(s);
  // Its firewall chain is in place before the container first runs.
  if (st.ok()) st = fw_->addContainer(s.name, s.ip);
  for (const auto& r : rules)
    if (st.ok()) st = fw_->addRule(s.name, r).status();
  // pid 1 is lxmig-init (container/init.cc); the command, when there is
  // one, its child with the first pid of the container's range.
  if (st.ok()) st = lxc_.installInit(s.name);
  std::vector<std::string> argv = {container::LxcHost::kInitPath};
  if (!laterProcesses) {
    argv.insert(argv.end(), {"--pid-base", std::to_string(s.pidBase), "--"});
    argv.insert(argv.end(), s.command.begin(), s.command.end());
  }
  if (st.ok()) st = lxc_.start(s.name, argv);
  if (st.ok() && s.pidBase > 1) st = lxc_.setLastPid(s.name, static_cast<pid_t>(s.pidBase - 1));
  if (st.ok()) st = claimAddress(s);
  // A command that ends right away (wrong arguments, a daemon that forks
  // off, nothing to do) leaves a stopped container: say so, not "running".
  for (int i = 0; st.ok() && i < kStartSettleMs / 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (lxc_.state(s.name) != RunState::kStopped) continue;
    if (std::string why = lxc_.execError(s.name); !why.empty())
      st = failedPrecondition("`" + s.command[0] + "` could not be started: " + why);
    else
      st = failedPrecondition("`" + s.command[0] + "` exited within " + std::to_string((i + 1) * 20) +
                              " ms of the start; the container needs a command that keeps running");
  }
  if (!st.ok()) {
    (void)lxc_.destroy(s.name);
    (void)fw_->removeContainer(s.name);
    // The CLI names the container already; the log names it here.
    LXMIG_LOG(kWarn, "node") << "run `" << s.name << "` failed: " << st.message();
    return st;
  }
  LXMIG_LOG(kInfo, "node") << "container " << s.name << " started at " << s.ip;
  return info(s.name);
}

Status Node::remove(const std::string& name) {
  LXMIG_ASSIGN_OR_RETURN(Spec s, spec(name));
  LXMIG_ASSIGN_OR_RETURN(Reservation busy, reserve(name, "being removed"));
  Status st = lxc_.destroy(name);
  (void)releaseAddress(s);
  dropNetState(s);
  return st;
}

Result<v1::ContainerInfo> Node::info(const std::string& name) {
  LXMIG_ASSIGN_OR_RETURN(Spec s, spec(name));
  v1::ContainerInfo ci;
  ci.set_name(s.name);
  ci.set_node(cfg_.node);
  ci.set_ip(s.ip);
  for (const auto& a : s.extraIps) ci.add_extra_ips(a);
  const auto kind = reservations_.kind(name);
  if (kind == ReservationKind::kMigratingOut || kind == ReservationKind::kMigratingIn) ci.set_state("MIGRATING");
  ci.set_memory_bytes(lxc_.memoryBytes(name));
  // While it is restored here, liblxc would wait for the container's monitor,
  // which waits for CRIU: this answer must not.
  if (!restoring(kind)) {
    RunState rs = lxc_.state(name);
    if (ci.state().empty()) ci.set_state(runStateName(rs));
    ci.set_init_pid(rs == RunState::kStopped ? 0 : lxc_.initPid(name));
  }
  for (const auto& c : s.command) ci.add_command(c);
  ci.set_created_ms(s.createdMs);
  return ci;
}

std::vector<v1::ContainerInfo> Node::list() {
  std::vector<v1::ContainerInfo> out;
  for (const auto& n : lxc_.list()) {
    auto i = info(n);
    if (i.ok()) out.push_back(std::move(*i));
  }
  return out;
}

v1::NodeInfo Node::nodeInfo() {
  v1::NodeInfo ni;
  if (auto offer = deviceOffer(); offer.ok())
    for (const auto& d : *offer) *ni.add_devices() = devices::toProto(d);
  ni.set_name(cfg_.node);
  ni.set_address(cfg_.listen);
  ni.set_data_port(dataPort_);
  ni.set_version(LXMIG_VERSION);
  ni.set_container_subnet(cfg_.containerSubnet);
  if (auto mi = readFile("/proc/meminfo"); mi.ok()) {
    for (const auto& l : split(*mi, '\n')) {
      auto parts = split(l, ' ');
      uint64_t kb = 0;
      if (parts.size() >= 2 && parseUint64(parts[1], &kb)) {
        if (parts[0] == "MemTotal:") ni.set_mem_total_bytes(kb * 1024);
        if (parts[0] == "MemAvailable:") ni.set_mem_available_bytes(kb * 1024);
      }
    }
  }
  if (auto la = readFile("/proc/loadavg"); la.ok()) ni.set_load1(std::atof(la->c_str()));
  const auto names = lxc_.list();
  ni.set_containers(static_cast<uint32_t>(names.size()));
  // The scheduler's view: capacity, use outside the containers, each
  // container's load.
  double usedCpu = 0;
  uint64_t usedMem = 0;
  for (const auto& name : names) {
    auto s = spec(name);
    if (!s.ok()) continue;
    v1::ContainerLoad* l = ni.add_loads();
    l->set_name(name);
    l->set_memory_bytes(lxc_.memoryBytes(name));
    {
      std::lock_guard lk(loadMu_);
      auto it = cpu_.find(name);
      if (it != cpu_.end() && it->second.prevNs > 0 && it->second.lastNs > it->second.prevNs &&
          it->second.lastUse >= it->second.prevUse)
        l->set_cpu(static_cast<double>(it->second.lastUse - it->second.prevUse) /
                   static_cast<double>(it->second.lastNs - it->second.prevNs));
    }
    l->set_pinned(s->pinned);
    if (auto needs = deviceNeedsOf(*s); needs.ok())
      for (const auto& d : *needs) l->add_devices(d.id());
    store::MigrationFilter f;
    f.container = name;
    f.result = "committed";
    f.limit = 1;
    if (auto last = audit_->listMigrations(f); last.ok() && !last->empty())
      l->set_last_move_ms(last->front().endedMs > 0 ? last->front().endedMs : last->front().startedMs);
    usedCpu += l->cpu();
    usedMem += l->memory_bytes();
  }
  const double cpus = cfg_.capacityCpuCount();
  const uint64_t mem = cfg_.capacityMemoryBytes();
  ni.set_cpus(cpus > 0 ? cpus : static_cast<double>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN))));
  if (mem > 0) ni.set_mem_total_bytes(mem);
  if (cpus <= 0 && mem <= 0) {
    // A real host: what is busy beyond the containers is the host's own.
    const uint64_t busy = ni.mem_total_bytes() - std::min(ni.mem_total_bytes(), ni.mem_available_bytes());
    ni.set_host_memory_bytes(busy > usedMem ? busy - usedMem : 0);
    ni.set_host_cpu(std::max(0.0, ni.load1() - usedCpu));
  }
  return ni;
}

void Node::sampleLoad() {
  const int64_t now = monotonicNs();
  std::map<std::string, CpuSample> next;
  for (const auto& name : lxc_.list()) {
    const uint64_t use = lxc_.cpuUsageNs(name);
    std::lock_guard lk(loadMu_);
    CpuSample s = cpu_.count(name) ? cpu_[name] : CpuSample{};
    s.prevNs = s.lastNs;
    s.prevUse = s.lastUse;
    s.lastNs = now;
    s.lastUse = use;
    next[name] = s;
  }
  std::lock_guard lk(loadMu_);
  cpu_ = std::move(next);  // containers gone are forgotten
}

}  // namespace lxmig::node
