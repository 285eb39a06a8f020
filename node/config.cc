#include "lxmig/node/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/toml_lite.h"
#include "lxmig/transport/data_link.h"

namespace lxmig::node {

using transport::splitHostPort;

Result<ClusterConfig> ClusterConfig::load(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parse(text, path);
}

Result<ClusterConfig> ClusterConfig::parse(const std::string& text, const std::string& origin) {
  LXMIG_ASSIGN_OR_RETURN(auto kv, parseTomlLite(text, origin));
  ClusterConfig c;
  for (const auto& name : kv.tables("node")) {
    LXMIG_RETURN_IF_ERROR(checkNodeName(name).withContext(origin));
    PeerInfo p;
    p.name = name;
    p.address = kv.get("node." + name + ".address");
    p.socket = kv.get("node." + name + ".socket");
    if (p.address.empty() && p.socket.empty())
      return invalidArgument(origin + ": node `" + name + "` has neither address nor socket");
    c.nodes[name] = p;
  }
  for (const auto& [k, v] : kv.values())
    if (k.rfind("store.", 0) == 0 && k != "store.etcd" && k != "store.etcd_ca" && k != "store.etcd_cert" &&
        k != "store.etcd_key" && k != "store.ttl")
      return invalidArgument(origin + ": unknown key " + quote(k) +
                             " in [store] (etcd, etcd_ca, etcd_cert, etcd_key, ttl)");
  auto store = sched::StoreConfig::fromValues(kv.get("store.etcd"), kv.get("store.etcd_ca"), kv.get("store.etcd_cert"),
                                              kv.get("store.etcd_key"), kv.get("store.ttl"));
  if (!store.ok()) return store.status().withContext(origin);
  c.store = std::move(*store);
  return c;
}

Result<AgentConfig> AgentConfig::load(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parse(text, path);
}

Result<AgentConfig> AgentConfig::parse(const std::string& text, const std::string& origin) {
  LXMIG_ASSIGN_OR_RETURN(auto kv, parseTomlLite(text, origin));
  AgentConfig c;
  static const std::map<std::string, std::string AgentConfig::*> kFields = {
      {"node", &AgentConfig::node},
      {"listen", &AgentConfig::listen},
      {"socket", &AgentConfig::socket},
      {"state_dir", &AgentConfig::stateDir},
      {"lxc_path", &AgentConfig::lxcPath},
      {"cgroup_parent", &AgentConfig::cgroupParent},
      {"bridge", &AgentConfig::bridge},
      {"fabric_if", &AgentConfig::fabricIf},
      {"container_subnet", &AgentConfig::containerSubnet},
      {"cluster_prefix", &AgentConfig::clusterPrefix},
      {"gateway", &AgentConfig::gateway},
      {"tls_ca", &AgentConfig::tlsCa},
      {"tls_cert", &AgentConfig::tlsCert},
      {"tls_key", &AgentConfig::tlsKey},
      {"data_listen", &AgentConfig::dataListen},
      {"cluster", &AgentConfig::clusterFile},
      {"images_tmpfs_size", &AgentConfig::imagesTmpfsSize},
      {"log_level", &AgentConfig::logLevel},
      {"firewall", &AgentConfig::firewall},
      {"firewall_table", &AgentConfig::firewallTable},
      {"devices", &AgentConfig::devices},
      {"source_silence", &AgentConfig::sourceSilence},
      {"data_link_cipher", &AgentConfig::dataLinkCipher},
      {"accept_forwarded", &AgentConfig::acceptForwarded},
      {"max_incoming", &AgentConfig::maxIncoming},
      {"frozen_limit", &AgentConfig::frozenLimit},
      {"audit_retention", &AgentConfig::auditRetention},
      {"capacity_cpus", &AgentConfig::capacityCpus},
      {"capacity_memory", &AgentConfig::capacityMemory},
  };
  for (const auto& [k, v] : kv.values()) {
    auto it = kFields.find(k);
    if (it == kFields.end()) return invalidArgument(origin + ": unknown key `" + k + "`");
    c.*(it->second) = v;
  }
  return c;
}

Status AgentConfig::validate() const {
  auto need = [](const std::string& v, const char* key) -> Status {
    if (v.empty()) return invalidArgument(std::string("missing `") + key + "` (config file or --" + key + ")");
    return okStatus();
  };
  LXMIG_RETURN_IF_ERROR(need(node, "node"));
  LXMIG_RETURN_IF_ERROR(need(stateDir, "state_dir"));
  LXMIG_RETURN_IF_ERROR(need(containerSubnet, "container_subnet"));
  LXMIG_RETURN_IF_ERROR(need(gateway, "gateway"));
  LXMIG_RETURN_IF_ERROR(parseCidr(containerSubnet).status());
  LXMIG_RETURN_IF_ERROR(parseCidr(clusterPrefix).status());
  in_addr a{};
  if (::inet_pton(AF_INET, gateway.c_str(), &a) != 1) return invalidArgument("bad gateway `" + gateway + "`");
  if (!listen.empty() && (tlsCa.empty() || tlsCert.empty() || tlsKey.empty()))
    return invalidArgument("`listen` needs tls_ca, tls_cert and tls_key: peers talk mutual TLS only");
  if (firewall != "open" && firewall != "strict")
    return invalidArgument("bad firewall `" + firewall + "` (open or strict)");
  if (!dataListen.empty() && dataListen != "off") {
    if (listen.empty()) return invalidArgument("`data_listen` needs `listen` (the same TLS identity serves both)");
    if (!splitHostPort(dataListen).ok())
      return invalidArgument("bad data_listen `" + dataListen + "` (HOST:PORT or off)");
  }
  LXMIG_RETURN_IF_ERROR(parseUint(sourceSilence, "source_silence (seconds)", 1, 86400).status());
  if (acceptForwarded != "true" && acceptForwarded != "false")
    return invalidArgument("bad accept_forwarded `" + acceptForwarded + "` (true or false)");
  LXMIG_RETURN_IF_ERROR(parseUint(maxIncoming, "max_incoming", 1, 64).status());
  LXMIG_RETURN_IF_ERROR(parseUint(frozenLimit, "frozen_limit (seconds)", 5, 3600).status());
  if (capacityCpus != "auto" && !(capacityCpuCount() > 0 && capacityCpuCount() <= 4096))
    return invalidArgument("bad capacity_cpus " + quote(capacityCpus) + ": a number of CPUs (0.5, 2, 64) or auto");
  if (capacityMemory != "auto" && capacityMemoryBytes() == 0)
    return invalidArgument("bad capacity_memory " + quote(capacityMemory) +
                           ": bytes, or a number with K, M, G or T, or auto");
  if (auditRetention != "off") {
    const char unit = auditRetention.empty() ? '\0' : auditRetention.back();
    if (unit != 'd' && unit != 'w')
      return invalidArgument("bad audit_retention " + quote(auditRetention) + ": days (90d), weeks (13w) or off");
    LXMIG_RETURN_IF_ERROR(
        parseUint(auditRetention.substr(0, auditRetention.size() - 1), "audit_retention", 1, unit == 'd' ? 36500 : 5200)
            .status());
  }
  LXMIG_RETURN_IF_ERROR(checkNodeName(node));
  if (dataLinkCipher != "auto" && dataLinkCipher != "aes-128-gcm")
    return invalidArgument("bad data_link_cipher `" + dataLinkCipher + "` (auto or aes-128-gcm)");
  if (auto hp = splitHostPort(listen); dataListen.empty() && hp.ok() && hp->second == 65535)
    return invalidArgument("`listen` port 65535 leaves no next port for the data link; set data_listen");
  return okStatus();
}

std::string AgentConfig::dataAddress() const {
  if (dataListen == "off") return "";
  if (!dataListen.empty()) return dataListen;
  auto hp = splitHostPort(listen);
  if (!hp.ok()) return "";
  // listen's host as written (with [v6] brackets), the next port; 0 stays
  // 0: any free port.
  return listen.substr(0, listen.rfind(':')) + ":" + std::to_string(hp->second == 0 ? 0 : hp->second + 1);
}

Result<std::pair<uint32_t, int>> parseCidr(const std::string& cidr) {
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return invalidArgument("not a CIDR block: `" + cidr + "`");
  in_addr a{};
  if (::inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) != 1)
    return invalidArgument("not a CIDR block: `" + cidr + "`");
  uint64_t len = 0;
  if (!parseUint64(cidr.substr(slash + 1), &len) || len > 32)
    return invalidArgument("bad prefix length in `" + cidr + "`");
  uint32_t host = ntohl(a.s_addr);
  uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  return std::make_pair(host & mask, static_cast<int>(len));
}

std::string ipToString(uint32_t hostOrder) {
  in_addr a{htonl(hostOrder)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

int64_t AgentConfig::auditRetentionMs() const {
  if (auditRetention == "off" || auditRetention.size() < 2) return 0;
  const int64_t n = std::atoll(auditRetention.c_str());
  return n * (auditRetention.back() == 'w' ? 7 : 1) * 86400 * 1000;
}

double AgentConfig::capacityCpuCount() const {
  if (capacityCpus == "auto" || capacityCpus.empty() || capacityCpus.size() > 12) return 0;
  // Digits and at most one point: no sign, blank, exponent, inf or nan.
  if (capacityCpus.find_first_not_of("0123456789.") != std::string::npos ||
      std::count(capacityCpus.begin(), capacityCpus.end(), '.') > 1)
    return 0;
  char* end = nullptr;
  const double v = std::strtod(capacityCpus.c_str(), &end);
  if (*end != '\0' || !(v > 0) || !std::isdigit(static_cast<unsigned char>(capacityCpus[0]))) return 0;
  return v;
}

uint64_t AgentConfig::capacityMemoryBytes() const {
  if (capacityMemory == "auto" || capacityMemory.empty()) return 0;
  std::string digits = capacityMemory;
  uint64_t unit = 1;
  switch (digits.back()) {
    case 'K':
      unit = uint64_t{1} << 10;
      break;
    case 'M':
      unit = uint64_t{1} << 20;
      break;
    case 'G':
      unit = uint64_t{1} << 30;
      break;
    case 'T':
      unit = uint64_t{1} << 40;
      break;
    default:
      break;
  }
  if (unit != 1) digits.pop_back();
  uint64_t n = 0;
  if (digits.empty() || digits.size() > 15 || !parseUint64(digits, &n) || n == 0) return 0;
  if (n > (uint64_t{1} << 50) / unit) return 0;
  return n * unit;
}

}  // namespace lxmig::node
