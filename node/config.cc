#include "lxmig/node/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "lxmig/base/files.h"
#include "lxmig/base/grammar.h"
#include "lxmig/base/log.h"
#include "lxmig/base/toml.h"
#include "lxmig/transport/data_link.h"

namespace lxmig::node {

Result<ClusterConfig> ClusterConfig::load(const std::string& path) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parse(text, path);
}

Result<ClusterConfig> ClusterConfig::parse(const std::string& text, const std::string& origin) {
  LXMIG_ASSIGN_OR_RETURN(auto kv, parseToml(text, origin));
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
  for (const auto& k : kv.keys())
    if (k.rfind("store.", 0) == 0 && k != "store.etcd" && k != "store.etcd_ca" && k != "store.etcd_cert" &&
        k != "store.etcd_key" && k != "store.ttl")
      return invalidArgument(origin + ": unknown key " + quote(k) +
                             " in [store] (etcd, etcd_ca, etcd_cert, etcd_key, ttl)");
  // etcd: an array of endpoints, or one string of them separated by commas.
  std::string endpoints = kv.get("store.etcd");
  if (auto list = kv.list("store.etcd"))
    for (const auto& e : *list) {
      if (e.find(',') != std::string::npos) return invalidArgument(origin + ": bad etcd endpoint " + quote(e));
      endpoints += (endpoints.empty() ? "" : ",") + e;
    }
  auto store = sched::StoreConfig::fromValues(endpoints, kv.get("store.etcd_ca"), kv.get("store.etcd_cert"),
                                              kv.get("store.etcd_key"), kv.get("store.ttl"));
  if (!store.ok()) return store.status().withContext(origin);
  c.store = std::move(*store);
  return c;
}

Result<AgentConfig> AgentConfig::load(const std::string& path, Report* report) {
  LXMIG_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parse(text, path, report);
}

namespace {

using Field = std::string AgentConfig::*;

// Every key, in docs/config.md's order.
const std::vector<std::pair<std::string, Field>>& fields() {
  static const std::vector<std::pair<std::string, Field>> kFields = {
      {"node", &AgentConfig::node},
      {"listen", &AgentConfig::listen},
      {"data_listen", &AgentConfig::dataListen},
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
      {"data_link_cipher", &AgentConfig::dataLinkCipher},
      {"criu_held_pages", &AgentConfig::criuHeldPages},
      {"criu_held_shmem", &AgentConfig::criuHeldShmem},
      {"criu_pagemap_offsets", &AgentConfig::criuPagemapOffsets},
      {"idmap", &AgentConfig::idmap},
      {"userns", &AgentConfig::userns},
      {"cluster", &AgentConfig::clusterFile},
      {"accept_forwarded", &AgentConfig::acceptForwarded},
      {"images_tmpfs_size", &AgentConfig::imagesTmpfsSize},
      {"images_disk_dir", &AgentConfig::imagesDiskDir},
      {"log_level", &AgentConfig::logLevel},
      {"firewall", &AgentConfig::firewall},
      {"firewall_table", &AgentConfig::firewallTable},
      {"hold_queue", &AgentConfig::holdQueue},
      {"devices", &AgentConfig::devices},
      {"source_silence", &AgentConfig::sourceSilence},
      {"frozen_limit", &AgentConfig::frozenLimit},
      {"max_incoming", &AgentConfig::maxIncoming},
      {"capacity_cpus", &AgentConfig::capacityCpus},
      {"capacity_memory", &AgentConfig::capacityMemory},
      {"audit_retention", &AgentConfig::auditRetention},
  };
  return kFields;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> AgentConfig::keys() {
  const AgentConfig defaults;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, field] : fields()) out.emplace_back(key, defaults.*field);
  return out;
}

Result<AgentConfig> AgentConfig::parse(const std::string& text, const std::string& origin, Report* report) {
  LXMIG_ASSIGN_OR_RETURN(auto kv, parseToml(text, origin));
  AgentConfig c;
  std::vector<std::string> problems;
  auto at = [&](const std::string& key) { return origin + ":" + std::to_string(kv.lineOf(key)) + ": "; };
  // In the file's order, so that --check-config lists problems by line.
  std::vector<std::string> keys = kv.keys();
  std::stable_sort(keys.begin(), keys.end(),
                   [&](const std::string& a, const std::string& b) { return kv.lineOf(a) < kv.lineOf(b); });
  for (const auto& key : keys) {
    auto it = std::find_if(fields().begin(), fields().end(), [&](const auto& f) { return f.first == key; });
    if (it == fields().end()) {
      problems.push_back(at(key) + "unknown key `" + key + "`");
      continue;
    }
    auto list = kv.list(key);
    if (!list) {
      c.*(it->second) = kv.get(key);
      if (key == "devices" && report && c.devices != "none")
        report->warnings.push_back(at(key) +
                                   "`devices` as a space-separated string is deprecated: write an array, "
                                   "devices = [\"/dev/fuse\", \"gpu=/dev/nvidia0\"] (or [] for none)");
      continue;
    }
    if (key != "devices") {
      problems.push_back(at(key) + "`" + key + "` takes one value, not an array");
      continue;
    }
    std::string joined;
    for (const auto& item : *list) {
      if (item.empty() || item.find(' ') != std::string::npos || item == "none")
        problems.push_back(at(key) + "bad device " + quote(item) + " in `devices` (PATH or CLASS=PATH)");
      joined += (joined.empty() ? "" : " ") + item;
    }
    c.devices = joined.empty() ? "none" : joined;
  }
  if (report) {
    report->problems.insert(report->problems.end(), problems.begin(), problems.end());
    return c;
  }
  if (!problems.empty()) return invalidArgument(problems.front());
  return c;
}

namespace {

// The images tmpfs's `size=` as mount(8) takes it: "0" (no tmpfs), bytes
// with an optional k, m, g or t, or a percentage of the RAM up to 100.
// Nothing else reaches the mount options (a comma would add one). Any other
// spelling of zero ("00", "0k", "0%") is refused: tmpfs reads size=0 as no
// limit at all, not as no tmpfs.
bool tmpfsSize(const std::string& v) {
  if (v == "0") return true;
  size_t digits = 0;
  while (digits < v.size() && std::isdigit(static_cast<unsigned char>(v[digits]))) ++digits;
  if (digits == 0 || digits > 15 || digits + 1 < v.size()) return false;
  if (std::strtoull(v.c_str(), nullptr, 10) == 0) return false;
  if (digits == v.size()) return true;
  const char unit = v.back();
  if (unit == '%') return std::strtoull(v.c_str(), nullptr, 10) <= 100;
  return std::strchr("kKmMgGtT", unit) != nullptr;
}

}  // namespace

std::vector<std::string> AgentConfig::problems() const {
  std::vector<std::string> out;
  auto add = [&](const Status& st) {
    if (!st.ok()) out.push_back(st.message());
  };
  auto need = [&](const std::string& v, const char* key) {
    if (v.empty()) out.push_back(std::string("missing `") + key + "` (config file or --" + key + ")");
  };
  need(node, "node");
  need(stateDir, "state_dir");
  need(containerSubnet, "container_subnet");
  need(gateway, "gateway");
  if (!containerSubnet.empty()) add(parseCidr(containerSubnet).status());
  add(parseCidr(clusterPrefix).status());
  in_addr a{};
  if (!gateway.empty() && ::inet_pton(AF_INET, gateway.c_str(), &a) != 1)
    out.push_back("bad gateway " + quote(gateway));
  if (!listen.empty() && (tlsCa.empty() || tlsCert.empty() || tlsKey.empty()))
    out.push_back("`listen` needs tls_ca, tls_cert and tls_key: peers talk mutual TLS only");
  if (firewall != "open" && firewall != "strict")
    out.push_back("bad firewall " + quote(firewall) + " (open or strict)");
  if (!dataListen.empty() && dataListen != "off") {
    if (listen.empty()) out.push_back("`data_listen` needs `listen` (the same TLS identity serves both)");
    else if (!splitHostPort(dataListen).ok())
      out.push_back("bad data_listen " + quote(dataListen) + " (HOST:PORT or off)");
  }
  add(parseUint(sourceSilence, "source_silence (seconds)", 1, 86400).status());
  if (acceptForwarded != "true" && acceptForwarded != "false")
    out.push_back("bad accept_forwarded " + quote(acceptForwarded) + " (true or false)");
  add(parseUint(maxIncoming, "max_incoming", 1, 64).status());
  add(parseUint(frozenLimit, "frozen_limit (seconds)", 5, 3600).status());
  if (holdQueue != "off") add(parseUint(holdQueue, "hold_queue", 0, 65535).status());
  if (criuHeldPages != "auto" && criuHeldPages != "off")
    out.push_back("bad criu_held_pages " + quote(criuHeldPages) + " (auto or off)");
  if (criuHeldShmem != "auto" && criuHeldShmem != "off")
    out.push_back("bad criu_held_shmem " + quote(criuHeldShmem) + " (auto or off)");
  if (criuPagemapOffsets != "auto" && criuPagemapOffsets != "off")
    out.push_back("bad criu_pagemap_offsets " + quote(criuPagemapOffsets) + " (auto or off)");
  if (idmap != "off" && idmapRange().second == 0)
    out.push_back("bad idmap " + quote(idmap) + " (BASE:SIZE, base >= 1, at least 65536 ids, or off)");
  if (userns != "on" && userns != "off") out.push_back("bad userns " + quote(userns) + " (on or off)");
  if (capacityCpus != "auto" && !(capacityCpuCount() > 0 && capacityCpuCount() <= 4096))
    out.push_back("bad capacity_cpus " + quote(capacityCpus) + ": a number of CPUs (0.5, 2, 64) or auto");
  if (capacityMemory != "auto" && capacityMemoryBytes() == 0)
    out.push_back("bad capacity_memory " + quote(capacityMemory) + ": bytes, or a number with K, M, G or T, or auto");
  if (auditRetention != "off") {
    const char unit = auditRetention.empty() ? '\0' : auditRetention.back();
    if (unit != 'd' && unit != 'w')
      out.push_back("bad audit_retention " + quote(auditRetention) + ": days (90d), weeks (13w) or off");
    else
      add(parseUint(auditRetention.substr(0, auditRetention.size() - 1), "audit_retention", 1,
                    unit == 'd' ? 36500 : 5200)
              .status());
  }
  if (!node.empty()) add(checkNodeName(node));
  if (dataLinkCipher != "auto" && dataLinkCipher != "aes-128-gcm")
    out.push_back("bad data_link_cipher " + quote(dataLinkCipher) + " (auto or aes-128-gcm)");
  if (auto hp = splitHostPort(listen); dataListen.empty() && hp.ok() && hp->second == 65535)
    out.push_back("`listen` port 65535 leaves no next port for the data link; set data_listen");
  if (firewallTable.empty()) out.push_back("missing `firewall_table`");
  // Made, joined and removed as directories under /sys/fs/cgroup.
  if (cgroupParent == "." || !checkRelativePath(cgroupParent).ok())
    out.push_back("bad cgroup_parent " + quote(cgroupParent) +
                  ": cgroup names joined by '/', none empty, \".\" or \"..\"");
  add(checkInterfaceName(bridge, "bridge"));
  if (!fabricIf.empty()) add(checkInterfaceName(fabricIf, "fabric_if"));
  if (!imagesDiskDir.empty() && imagesDiskDir != "off" && !checkAbsolutePath(imagesDiskDir).ok())
    out.push_back("bad images_disk_dir " + quote(imagesDiskDir) +
                  ": an absolute path without . or .. components, or off");
  if (!tmpfsSize(imagesTmpfsSize))
    out.push_back("bad images_tmpfs_size " + quote(imagesTmpfsSize) +
                  ": 0 (no tmpfs), bytes above 0 with an optional k, m, g or t, or a percentage of "
                  "the RAM (50%)");
  for (const auto& [key, dir] :
       {std::pair<const char*, const std::string*>{"state_dir", &stateDir}, {"lxc_path", &lxcPath}})
    if (!dir->empty() && !checkAbsolutePath(*dir).ok())
      out.push_back(std::string("bad ") + key + " " + quote(*dir) + ": an absolute path without . or .. components");
  if (log::Level level; !log::parseLevel(logLevel, &level))
    out.push_back("bad log_level " + quote(logLevel) + " (debug, info, warn, error or off)");
  return out;
}

Result<ConfigCheck> checkConfigFile(const std::string& path) {
  AgentConfig::Report report;
  LXMIG_ASSIGN_OR_RETURN(AgentConfig cfg, AgentConfig::load(path, &report));
  ConfigCheck out{report.problems, report.warnings};
  for (const auto& p : cfg.problems()) out.errors.push_back(path + ": " + p);
  if (!pathExists(cfg.clusterFile))
    out.warnings.push_back(path + ": cluster file " + cfg.clusterFile +
                           " does not exist (this node would know no peers)");
  else if (auto c = ClusterConfig::load(cfg.clusterFile); !c.ok()) out.errors.push_back(c.status().message());
  return out;
}

Status AgentConfig::validate() const {
  auto all = problems();
  if (all.empty()) return okStatus();
  return invalidArgument(all.front());
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

std::pair<uint32_t, uint32_t> AgentConfig::idmapRange() const {
  const auto colon = idmap.find(':');
  if (idmap == "off" || colon == std::string::npos) return {0, 0};
  auto base = parseUint(std::string_view(idmap).substr(0, colon), "idmap base", 1, UINT32_MAX - 65536);
  auto size = parseUint(std::string_view(idmap).substr(colon + 1), "idmap size", 65536, UINT32_MAX - 1);
  if (!base.ok() || !size.ok() || *base + *size > UINT32_MAX - 1) return {0, 0};
  return {static_cast<uint32_t>(*base), static_cast<uint32_t>(*size)};
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
