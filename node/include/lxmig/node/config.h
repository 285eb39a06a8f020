// lxmigd's configuration: the agent's own file plus the cluster inventory.
//
//   agent.conf (TOML, see base/toml.h; every key in docs/config.md):
//     node = "n1"                      listen = "10.99.0.11:7443"
//     socket = "/run/lxmig/agent.sock" state_dir = "/var/lib/lxmig"
//     lxc_path = "/var/lib/lxmig/lxc"  cgroup_parent = "lxmig"
//     bridge = "lxbr0"                 fabric_if = "eth0"
//     container_subnet = "10.200.1.0/24"   # this node's allocation pool
//     cluster_prefix = "10.200.0.0/16"     # containers' on-link prefix
//     gateway = "10.200.0.1"               # anycast gateway on every bridge
//     tls_ca / tls_cert / tls_key = PEM paths
//     data_listen = "10.99.0.11:7444"  # bulk data links (same TLS identity);
//                                      # default: listen's port + 1; "off": none,
//                                      # bulk data then flows over gRPC
//     cluster = "/etc/lxmig/cluster.toml"
//     images_tmpfs_size = "50%"        # tmpfs for CRIU images; "0" = no tmpfs
//     images_disk_dir = "<state_dir>/images-disk"  # where a target stages a
//                                      # migration's images when the tmpfs is short;
//                                      # "off": refused instead
//     firewall = "open"                # or "strict": forward policy drop, only
//                                      # established flows and published ports
//     firewall_table = "lxmig"         # the nftables table lxmig owns (inet)
//     hold_queue = "4242"              # NFQUEUE where packets for a frozen container
//                                      # wait until it runs again; "off": dropped
//     devices = ["/dev/fuse", "gpu=/dev/nvidia0"]  # devices offered to containers
//                                      # (CLASS=PATH allows mappings); unset: every
//                                      # device node under /dev; "none": nothing
//     source_silence = "120"           # seconds before an incoming migration
//                                      # whose source went silent is settled here
//     data_link_cipher = "auto"        # AES-128-OCB when both ends offer it, else
//                                      # AES-128-GCM; "aes-128-gcm": GCM only
//     accept_forwarded = "true"        # operator commands other nodes forward for
//                                      # their operator (run, rm, exec, fw, migrate);
//                                      # "false": only this node's own CLI
//     max_incoming = "4"               # migrations into this node at once
//     capacity_cpus = "auto"           # CPUs this node gives to containers (scheduler);
//                                      # "auto": the host's; a number: a share of it
//     capacity_memory = "auto"         # the same for memory ("64G", "512M", bytes);
//                                      # set both to simulate nodes on one host: the
//                                      # host's own use then counts as none
//     audit_retention = "90d"          # audit rows older than this are removed
//                                      # (days "90d" or weeks "13w"); "off": kept
//     frozen_limit = "60"              # seconds a source stays frozen for a target
//                                      # that does not answer before it aborts
//
//   cluster.toml:  [node.n1] address = "10.99.0.11:7443" socket = "..." (optional)
//                  [store] etcd = ["http://10.0.0.5:2379"] ttl = 10 (optional;
//                  sched/cluster_store.h): live membership and cluster locks
// Flags given on the command line override the file.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lxmig/base/status.h"
#include "lxmig/sched/cluster_store.h"

namespace lxmig::node {

struct PeerInfo {
  std::string name;
  std::string address;  // host:port for mTLS
  std::string socket;   // local Unix socket, when the node's agent runs on this machine
};

struct ClusterConfig {
  std::map<std::string, PeerInfo> nodes;
  // The [store] table: etcd endpoints and the lease TTL (disabled: none).
  sched::StoreConfig store;
  static Result<ClusterConfig> load(const std::string& path);
  // The same from the file's text; `origin` names it in errors.
  static Result<ClusterConfig> parse(const std::string& text, const std::string& origin);
};

struct AgentConfig {
  std::string node;
  std::string listen;
  std::string socket = "/run/lxmig/agent.sock";
  std::string stateDir = "/var/lib/lxmig";
  std::string lxcPath;  // default: <state_dir>/lxc
  std::string cgroupParent = "lxmig";
  std::string bridge = "lxbr0";
  std::string fabricIf;
  std::string containerSubnet;
  std::string clusterPrefix = "10.200.0.0/16";
  std::string gateway;
  std::string tlsCa, tlsCert, tlsKey;
  std::string dataListen;
  std::string clusterFile = "/etc/lxmig/cluster.toml";
  std::string imagesTmpfsSize = "50%";
  // A directory on disk for a target's images when the tmpfs cannot hold
  // them (chosen per migration at PREPARE); empty: <state_dir>/images-disk;
  // "off": such a migration is refused.
  std::string imagesDiskDir;
  std::string logLevel = "info";
  std::string firewall = "open";
  std::string firewallTable = "lxmig";
  // The NFQUEUE number packets for a frozen container wait in (net/hold.h),
  // or "off" (they are dropped, and clients retransmit).
  std::string holdQueue = "4242";
  int holdQueueNumber() const { return holdQueue == "off" ? -1 : std::atoi(holdQueue.c_str()); }
  std::string devices;
  // Seconds an incoming migration waits for a silent source before the
  // target settles it alone (aborts it before the restore, commits after).
  std::string sourceSilence = "120";
  int sourceSilenceSeconds() const { return std::atoi(sourceSilence.c_str()); }
  // The data link's frame cipher: "auto" (AES-128-OCB when the peer offers
  // it too, else AES-128-GCM) or "aes-128-gcm" (never OCB, e.g. FIPS).
  std::string dataLinkCipher = "auto";
  // Pre-copy's dump leaves out the pages the target holds ("auto": when
  // this node's CRIU was built with lxmig's patch, criu/held_pages.h) or
  // drains them all and rewrites the images after ("off").
  std::string criuHeldPages = "auto";
  // A pre-copy target keeps the container's shared memory whole in memfds
  // that CRIU's restore takes as the objects ("auto": when this node's CRIU
  // was built with lxmig's patch, criu::PageStore's mirrors), or lets the
  // restore write it ("off").
  std::string criuHeldShmem = "auto";
  // The pre-copy target hands its page store to CRIU as it is, each
  // pagemap entry naming where its pages are ("auto": when this node's CRIU
  // was built with lxmig's patch, criu::PageStore::withPagemapOffsets), or
  // moves the pages into address order first ("off").
  std::string criuPagemapOffsets = "auto";
  // The host ids this node maps containers with a user namespace of their
  // own onto ("BASE:SIZE", uid and gid alike; "off": none): root inside is
  // BASE. A container migrates only to a node whose range holds its map.
  std::string idmap = "100000:65536";
  // lxmig run gives every new container a user namespace ("on") or only
  // when asked (--userns; "off").
  std::string userns = "off";
  // idmap parsed: base and size, {0, 0} for "off" or a bad value.
  std::pair<uint32_t, uint32_t> idmapRange() const;
  // Operator commands another node of the cluster forwards for its operator
  // are served ("true") or refused ("false").
  std::string acceptForwarded = "true";
  bool acceptsForwarded() const { return acceptForwarded == "true"; }
  // Incoming migrations prepared at once; more are refused at PREPARE.
  std::string maxIncoming = "4";
  int maxIncomingCount() const { return std::atoi(maxIncoming.c_str()); }
  // Seconds a source keeps a container frozen while the target does not
  // take the images; then, before the restore was sent, it aborts and thaws.
  std::string frozenLimit = "60";
  int frozenLimitSeconds() const { return std::atoi(frozenLimit.c_str()); }
  // How long the audit keeps a finished migration, a node event, a
  // decision: "<N>d" or "<N>w" (1 day .. 100 years), or "off".
  std::string auditRetention = "90d";
  // What the node gives to containers, for the scheduler: "auto" (the
  // host's CPUs and memory) or a figure.
  std::string capacityCpus = "auto";
  std::string capacityMemory = "auto";
  // 0 for "auto" (validate() has checked the syntax).
  double capacityCpuCount() const;
  uint64_t capacityMemoryBytes() const;
  // Milliseconds; 0 when "off" (validate() has checked the syntax).
  int64_t auditRetentionMs() const;
  // Testing only (flag --fail-at, never from the file): makes one step fail
  // for real on this node, e.g. "conntrack-import".
  std::string failAt;

  // What reading a file found besides its values: with a report, parse()
  // goes on past unknown keys and wrong types and lists every one here
  // (lxmigd --check-config); warnings are for forms still accepted (the
  // space-separated `devices` string).
  struct Report {
    std::vector<std::string> problems;
    std::vector<std::string> warnings;
  };
  // Fills the fields present in the file; missing optional ones keep
  // defaults. Without a report, the first problem is the error.
  static Result<AgentConfig> load(const std::string& path, Report* report = nullptr);
  // The same from the file's text; `origin` names it in errors.
  static Result<AgentConfig> parse(const std::string& text, const std::string& origin, Report* report = nullptr);
  // Checks required fields and their syntax: the first problem.
  Status validate() const;
  // Every problem validate() would find, one line each.
  std::vector<std::string> problems() const;
  // Every key of the file with its default ("" when none), in the order
  // docs/config.md lists them (a unit test keeps the two the same).
  static std::vector<std::pair<std::string, std::string>> keys();
  // Where the data link listens: data_listen, or listen's host with the
  // next port; "" when switched off or without `listen`.
  std::string dataAddress() const;
};

// lxmigd --check-config FILE: every problem of an agent config file (in
// the file's line order, then those of values that depend on each other)
// and of the cluster file it names, one line each; warnings for forms still
// accepted and a missing cluster file. An error when the file cannot be
// read or is not TOML.
struct ConfigCheck {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};
Result<ConfigCheck> checkConfigFile(const std::string& path);

// "10.200.1.0/24" -> (network, prefix length) in host byte order.
Result<std::pair<uint32_t, int>> parseCidr(const std::string& cidr);
std::string ipToString(uint32_t hostOrder);

}  // namespace lxmig::node
