#!/usr/bin/env bash
# The embedded test bed: an N-node lxmig cluster simulated on this machine.
#
#   <P>-fab      fabric namespace: bridge "fab" joining every node and the client
#   <P>-n<i>     node i: fab0 10.99.0.(10+i)/24, container bridge lxbr0 holding the
#                containers' gateway 10.200.0.1/32, container pool 10.200.i.0/24,
#                one lxmigd with its own state dir, LXC path and cgroup parent
#   <P>-client   a client: fab0 10.99.0.2/24, reaches containers over the fabric
#
# Every address lives inside these namespaces; the root namespace gets no
# interface, address or route. Containers keep their address when they move:
# the node running a container routes its /32 to lxbr0 and answers ARP for it
# on the fabric (proxy ARP), and the new node announces it (gratuitous ARP).
#
#   /run/<P>-testbed/         cluster.toml, pki/, n<i>/{agent.conf,agent.sock,agent.pid,agent.log}
#   /var/lib/<P>-testbed/n<i> state/ (audit.db, images tmpfs), lxc/ (containers)
#   cgroup <P>-n<i>/          payload.<name>, monitor.<name> in every hierarchy
#
# Usage: testbed.sh [--prefix P] up [--nodes N] [--lxmigd PATH] [--etcd]
#        testbed.sh [--prefix P] down
#        testbed.sh [--prefix P] status [--json]
#        testbed.sh [--prefix P] exec NODE -- CMD...     (in the node's namespaces)
#        testbed.sh [--prefix P] client -- CMD...        (in the client namespace)
#        testbed.sh [--prefix P] restart-agent [--lxmigd PATH] [--criu-dir DIR] NODE [-- LXMIGD-FLAGS...]
# --criu-dir makes the restarted agent run DIR/criu instead of CRIU_BIN/criu
# (a test's CRIU wrapper, e.g. one that hangs a restore).
# P defaults to $LXMIG_TESTBED_PREFIX or "lxmig". `down` works after a crash too.
# Nodes run a strict firewall (forward policy drop; established flows, the
# containers' own connections and their published ports pass) with strict
# TCP connection tracking; LXMIG_TESTBED_FIREWALL=open makes it permissive.
# LXMIG_TESTBED_AGENT_CONF: lines added to every agent's config at `up`
# (e.g. 'criu_held_pages = "off"' for an A/B of one setting).
# n1 offers /dev/fuse and /dev/net/tun to containers, every other node only
# /dev/fuse (agent config `devices`).
# --etcd: the cluster store is an etcd (Debian's etcd-server) in the client
# namespace at 10.99.0.2:2379 (data in /var/lib/<P>-testbed/etcd); agents
# register there under a 3 s lease and the cluster file lists no peer
# address, only the store and each node's socket.
set -euo pipefail

P=${LXMIG_TESTBED_PREFIX:-lxmig}
NODES=2
LXMIGD=${LXMIGD:-}
JSON=0
ETCD=0
ETCD_BIN=/usr/bin/etcd
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=7400
FIREWALL=${LXMIG_TESTBED_FIREWALL:-strict}
CRIU_BIN=/opt/lxmig/bin
CRIU_FIRST=

die() { echo "testbed: $*" >&2; exit 1; }
say() { echo "testbed: $*" >&2; }

args=()
while (($#)); do
  case $1 in
    --prefix) P=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --lxmigd) LXMIGD=$2; shift 2 ;;
    --criu-dir) CRIU_FIRST=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    --etcd) ETCD=1; shift ;;
    --) args+=("$@"); break ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]}"
CMD=${1:-}
shift || true

[[ $P =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "bad prefix \`$P\` (lowercase letters and digits, at most 8)"
[[ $NODES =~ ^[1-9]$ ]] || die "bad --nodes \`$NODES\` (1..9)"
R=/run/$P-testbed
S=/var/lib/$P-testbed

node_ip() { echo "10.99.0.$((10 + $1))"; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

find_lxmigd() {
  [[ -n $LXMIGD ]] && { [[ -x $LXMIGD ]] || die "no lxmigd at $LXMIGD"; return; }
  for c in "$ROOT/build/agent/lxmigd" "$(command -v lxmigd || true)"; do
    [[ -n $c && -x $c ]] && { LXMIGD=$c; return; }
  done
  die "lxmigd not found (build first: scripts/build.sh, or pass --lxmigd)"
}

nodes_up() {  # node names present in the run dir
  local d
  for d in "$R"/n[0-9]; do [[ -d $d ]] && basename "$d"; done
  return 0
}

# ---- PKI ---------------------------------------------------------------------
# Certificates with lxmig's own commands (lxmig cluster, transport/pki.h),
# as an operator makes them.
find_lxmig() {
  [[ -n ${LXMIG_BIN:-} && -x $LXMIG_BIN ]] && return
  for c in "$ROOT/build/cli/lxmig" "$(command -v lxmig || true)"; do
    [[ -n $c && -x $c ]] && { LXMIG_BIN=$c; return; }
  done
  die "lxmig not found (build first: scripts/build.sh)"
}

make_pki() {
  local pki=$R/pki i
  find_lxmig
  "$LXMIG_BIN" --quiet cluster --dir "$pki" init --name "$P test bed CA" >/dev/null
  for ((i = 1; i <= NODES; i++)); do
    "$LXMIG_BIN" --quiet cluster --dir "$pki" add-node "n$i" --address "$(node_ip "$i")" >/dev/null
  done
  # A certificate from a CA the cluster does not trust, naming n1, for
  # refusal tests.
  "$LXMIG_BIN" --quiet cluster --dir "$pki/rogue" init --name "rogue CA" >/dev/null
  "$LXMIG_BIN" --quiet cluster --dir "$pki/rogue" add-node n1 --address "$(node_ip 1)" >/dev/null
  mv "$pki/rogue/n1.crt" "$pki/rogue/rogue.crt"
  mv "$pki/rogue/n1.key" "$pki/rogue/rogue.key"
  # A certificate of the cluster CA that names no node of the cluster: a
  # peer must be a node of the inventory, not just hold a CA signature.
  mkdir -p -m 700 "$pki/stranger"
  "$LXMIG_BIN" --quiet cluster --dir "$pki" add-node stranger --address 10.99.0.99 >/dev/null
  mv "$pki/stranger.crt" "$pki/stranger.key" "$pki/stranger/"
}

# ---- networking --------------------------------------------------------------
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

make_fabric() {
  ip netns add "$P-fab"
  ip -n "$P-fab" link set lo up
  ip -n "$P-fab" link add fab type bridge
  ip -n "$P-fab" link set fab up
  ip netns add "$P-client"
  ip -n "$P-client" link set lo up
  ip -n "$P-fab" link add client type veth peer name fab0 netns "$P-client"
  ip -n "$P-fab" link set client master fab up
  ip -n "$P-client" addr add 10.99.0.2/24 dev fab0
  ip -n "$P-client" link set fab0 up
  ip -n "$P-client" route add 10.200.0.0/16 dev fab0
  nsx "$P-client" sysctl -qw net.ipv4.neigh.fab0.locktime=0 net.ipv4.conf.fab0.arp_accept=1
}

make_node() {  # i
  local i=$1 ns=$P-n$1
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$P-fab" link add "n$i" type veth peer name fab0 netns "$ns"
  ip -n "$P-fab" link set "n$i" master fab up
  ip -n "$ns" addr add "$(node_ip "$i")/24" dev fab0
  ip -n "$ns" link set fab0 up
  ip -n "$ns" link add lxbr0 type bridge
  # The same gateway MAC and address on every node: a container that moves
  # keeps a valid ARP entry for its gateway.
  ip -n "$ns" link set lxbr0 address 02:4c:58:00:00:01
  ip -n "$ns" addr add 10.200.0.1/32 dev lxbr0
  ip -n "$ns" link set lxbr0 up
  ip -n "$ns" route add 10.200.0.0/16 dev fab0
  nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.fab0.rp_filter=0 net.ipv4.conf.lxbr0.rp_filter=0 \
    net.ipv4.conf.fab0.proxy_arp=1 net.ipv4.conf.lxbr0.proxy_arp=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.fab0.send_redirects=0 \
    net.ipv4.neigh.fab0.proxy_delay=0 net.ipv4.neigh.lxbr0.proxy_delay=0 \
    net.ipv4.neigh.fab0.locktime=0 net.ipv4.conf.fab0.arp_accept=1
  # Strict connection tracking: a mid-stream TCP packet without an entry is
  # INVALID (not picked up), so only replicated entries keep flows alive.
  nsx "$ns" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
}

# Devices offered to containers: n1 offers /dev/net/tun, the others do not,
# so placement refusals and successes both happen for real.
node_devices() {  # as a TOML array
  if (($1 == 1)); then echo '["/dev/fuse", "/dev/net/tun"]'; else echo '["/dev/fuse"]'; fi
}

write_configs() {
  local i d
  {
    echo "# $P test bed cluster, written by scripts/testbed.sh"
    if ((ETCD)); then
      printf '[store]\netcd = ["http://10.99.0.2:2379"]\nttl = 3\n\n'
      for ((i = 1; i <= NODES; i++)); do
        printf '[node.n%d]\nsocket = "%s/n%d/agent.sock"\nnetns = "%s-n%d"\n\n' "$i" "$R" "$i" "$P" "$i"
      done
    else
      for ((i = 1; i <= NODES; i++)); do
        printf '[node.n%d]\naddress = "%s:%d"\nsocket = "%s/n%d/agent.sock"\nnetns = "%s-n%d"\n\n' \
          "$i" "$(node_ip "$i")" "$PORT" "$R" "$i" "$P" "$i"
      done
    fi
    printf '[client]\nnetns = "%s-client"\naddress = "10.99.0.2"\n' "$P"
  } >"$R/cluster.toml"
  for ((i = 1; i <= NODES; i++)); do
    d=$R/n$i
    mkdir -p "$d" "$S/n$i/state" "$S/n$i/lxc"
    cat >"$d/agent.conf" <<EOF
# lxmigd of test-bed node n$i
node = "n$i"
listen = "$(node_ip "$i"):$PORT"
socket = "$d/agent.sock"
state_dir = "$S/n$i/state"
lxc_path = "$S/n$i/lxc"
cgroup_parent = "$P-n$i"
bridge = "lxbr0"
fabric_if = "fab0"
container_subnet = "10.200.$i.0/24"
cluster_prefix = "10.200.0.0/16"
gateway = "10.200.0.1"
tls_ca = "$R/pki/ca.crt"
tls_cert = "$R/pki/n$i.crt"
tls_key = "$R/pki/n$i.key"
cluster = "$R/cluster.toml"
firewall = "$FIREWALL"
devices = $(node_devices "$i")
# Simulated nodes share this host: each gives the scheduler one CPU and
# 2 GiB, and the host's own use counts as none.
capacity_cpus = "1"
capacity_memory = "2G"
${LXMIG_TESTBED_AGENT_CONF:-}
EOF
  done
}

# ---- etcd (--etcd) ------------------------------------------------------------
etcd_pid() {  # pid of our etcd, or nothing
  local f=$R/etcd.pid pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-dir $S/etcd" && echo "$pid"
  return 0
}

start_etcd() {
  [[ -x $ETCD_BIN ]] || die "no etcd at $ETCD_BIN (apt-get install etcd-server; scripts/setup.sh does)"
  local url=http://10.99.0.2:2379 peer=http://127.0.0.1:2380 t
  setsid ip netns exec "$P-client" "$ETCD_BIN" --name "$P" --data-dir "$S/etcd" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$P=$peer" \
    </dev/null >>"$R/etcd.log" 2>&1 &
  echo $! >"$R/etcd.pid"
  for ((t = 0; t < 150; t++)); do
    ip netns exec "$P-client" bash -c "exec 3<>/dev/tcp/10.99.0.2/2379" 2>/dev/null && return 0
    [[ -n $(etcd_pid) ]] || { tail -20 "$R/etcd.log" >&2; die "etcd exited during start (log: $R/etcd.log)"; }
    sleep 0.1
  done
  tail -20 "$R/etcd.log" >&2
  die "etcd did not listen on $url within 15 s"
}

# SIGTERM, then SIGKILL after `tenths` tenths of a second (a pid of ours).
stop_pid() {  # pid tenths
  local pid=$1 t
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((t = 0; t < $2; t++)); do
    [[ -d /proc/$pid ]] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

stop_etcd() { stop_pid "$(etcd_pid)" 50; }

# ---- agents ------------------------------------------------------------------
agent_pid() {  # node -> pid of a live agent, or nothing
  local f=$R/$1/agent.pid pid
  [[ -f $f ]] || return 0
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || return 0
  # Only a process that still is our lxmigd (pids get reused).
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config $R/$1/agent.conf" && echo "$pid"
  return 0
}

start_agent() {  # node [extra lxmigd flags...]
  local n=$1 d=$R/$1
  shift
  rm -f "$d/agent.sock" "$d/agent.pid"
  # The agent gets the node's network namespace and a mount namespace of its
  # own, where /sys shows that network namespace (liblxc reads bridges and
  # veths there) and /sys/fs/cgroup is the host's, carried across.
  setsid nsenter --net="/run/netns/$P-$n" -- unshare --mount --propagation slave -- bash -c '
    set -e
    d=$1; shift
    mkdir -p "$d/cg"
    mount --rbind /sys/fs/cgroup "$d/cg"
    mount -t sysfs sysfs /sys
    mount --rbind "$d/cg" /sys/fs/cgroup
    umount -l "$d/cg"
    echo $$ >"$d/agent.pid"
    exec "$@"' lxmig-testbed "$d" \
    env ${CRIU_FIRST:+"LXMIG_CRIU_DIR=$CRIU_FIRST"} PATH="$CRIU_BIN:$PATH" "$LXMIGD" --config "$d/agent.conf" "$@" \
    </dev/null >>"$d/agent.log" 2>&1 &
  local t
  for ((t = 0; t < 300; t++)); do
    [[ -S $d/agent.sock ]] && return 0
    if ((t > 5)) && [[ -z $(agent_pid "$n") ]]; then
      tail -20 "$d/agent.log" >&2
      die "agent of $n exited during start (log: $d/agent.log)"
    fi
    sleep 0.1
  done
  tail -20 "$d/agent.log" >&2
  die "agent of $n did not open $d/agent.sock within 30 s"
}

stop_agent() { stop_pid "$(agent_pid "$1")" 100; }  # node

# Kills everything in a cgroup subtree (frozen tasks included) and removes it.
kill_cgroup_tree() {  # relative path
  local rel=$1 h dir pids
  for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
    dir=$h/$rel
    [[ -d $dir ]] || continue
    local t
    for ((t = 0; t < 50; t++)); do
      pids=$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
      [[ -z $pids ]] && break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      find "$dir" -name freezer.state -exec sh -c 'echo THAWED >"$1"' _ {} \; 2>/dev/null || true
      find "$dir" -name cgroup.freeze -exec sh -c 'echo 0 >"$1"' _ {} \; 2>/dev/null || true
      sleep 0.1
    done
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# ---- subcommands -------------------------------------------------------------
cmd_up() {
  need_root
  find_lxmigd
  [[ -x $CRIU_BIN/criu ]] || die "no CRIU at $CRIU_BIN/criu (run scripts/setup.sh)"
  if [[ -f $R/cluster.toml ]]; then
    local have n missing=0
    have=$(nodes_up | wc -l)
    for n in $(nodes_up); do [[ -n $(agent_pid "$n") ]] || missing=1; done
    local store=0
    grep -q '^\[store\]' "$R/cluster.toml" && store=1
    if [[ $have == "$NODES" && $missing == 0 && $store == "$ETCD" ]]; then
      say "already up ($NODES nodes, prefix $P)"
      return 0
    fi
    say "replacing an incomplete or different test bed"
    cmd_down
  else
    cmd_down >/dev/null 2>&1 || true
  fi
  mkdir -p "$R" "$S"
  chmod 700 "$R"
  make_pki
  make_fabric
  local i
  for ((i = 1; i <= NODES; i++)); do make_node "$i"; done
  ((ETCD)) && start_etcd
  write_configs
  for ((i = 1; i <= NODES; i++)); do start_agent "n$i"; done
  say "up: $NODES nodes (prefix $P), cluster file $R/cluster.toml"
}

cmd_down() {
  need_root
  local n i
  for n in $(nodes_up); do stop_agent "$n"; done
  [[ -d $R ]] && stop_etcd
  for ((i = 1; i <= 9; i++)); do kill_cgroup_tree "$P-n$i"; done
  for n in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $n in
      "$P-fab" | "$P-client" | "$P"-n[0-9]) ip netns del "$n" 2>/dev/null || true ;;
    esac
  done
  # Mounts an agent or a crashed run may have left visible here.
  local m
  for m in $(awk -v r="$R" -v s="$S" 'index($2, r) == 1 || index($2, s) == 1 {print $2}' /proc/self/mounts |
             sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$R" "$S"
  say "down (prefix $P)"
}

cmd_status() {
  local up=false n
  [[ -f $R/cluster.toml ]] && up=true
  local rows=()
  for n in $(nodes_up); do
    local i=${n#n} pid
    pid=$(agent_pid "$n")
    rows+=("$n|$P-$n|$(node_ip "$i")|$PORT|$R/$n/agent.sock|$R/$n/agent.conf|${pid:-0}|10.200.$i.0/24")
  done
  if [[ $JSON == 1 ]]; then
    printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
p, up, run = sys.argv[1], sys.argv[2] == "true", sys.argv[3]
nodes = []
for line in sys.stdin.read().split("\n"):
    if not line: continue
    name, netns, addr, port, sock, conf, pid, subnet = line.split("|")
    nodes.append({"name": name, "netns": netns, "address": addr, "port": int(port), "socket": sock,
                  "config": conf, "agent_pid": int(pid), "agent_running": pid != "0",
                  "container_subnet": subnet})
print(json.dumps({"prefix": p, "up": up, "nodes": nodes,
                  "client": {"netns": p + "-client", "address": "10.99.0.2"} if up else None,
                  "cluster_file": run + "/cluster.toml" if up else None,
                  "container_prefix": "10.200.0.0/16"}, indent=2))' "$P" "$up" "$R"
    return 0
  fi
  if [[ $up != true ]]; then
    echo "test bed $P is down"
    return 0
  fi
  echo "test bed $P: cluster file $R/cluster.toml, client netns $P-client (10.99.0.2)"
  printf '%-5s %-12s %-16s %-16s %s\n' NODE NETNS ADDRESS SUBNET AGENT
  local r
  for r in "${rows[@]}"; do
    IFS='|' read -r n ns addr port sock conf pid subnet <<<"$r"
    printf '%-5s %-12s %-16s %-16s %s\n' "$n" "$ns" "$addr:$port" "$subnet" \
      "$([[ $pid != 0 ]] && echo "running (pid $pid)" || echo "NOT RUNNING")"
  done
}

cmd_exec() {
  need_root
  local n=${1:-}
  [[ -n $n ]] || die "exec needs a node name"
  shift
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "exec needs a command after --"
  [[ -d $R/$n ]] || die "no node \`$n\` in test bed $P"
  local pid
  pid=$(agent_pid "$n")
  if [[ -n $pid ]]; then
    exec nsenter -t "$pid" -m -n -- "$@"
  fi
  exec ip netns exec "$P-$n" "$@"
}

cmd_client() {
  need_root
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "client needs a command after --"
  [[ -e /run/netns/$P-client ]] || die "test bed $P is down"
  exec ip netns exec "$P-client" "$@"
}

cmd_restart_agent() {
  need_root
  find_lxmigd
  local n=${1:-}
  [[ -n $n && -d $R/$n ]] || die "no node \`$n\` in test bed $P"
  shift
  [[ ${1:-} == -- ]] && shift
  [[ -z $CRIU_FIRST || ($CRIU_FIRST == /* && -d $CRIU_FIRST) ]] ||
    die "--criu-dir wants an absolute directory, not \`$CRIU_FIRST\`"
  stop_agent "$n"
  start_agent "$n" "$@"
}

case $CMD in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec) cmd_exec "$@" ;;
  client) cmd_client "$@" ;;
  restart-agent) cmd_restart_agent "$@" ;;
  *) die "usage: testbed.sh [--prefix P] up [--nodes N] | down | status [--json] | exec NODE -- CMD" \
         "| client -- CMD | restart-agent NODE" ;;
esac
