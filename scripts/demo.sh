#!/usr/bin/env bash
# The main job on the embedded default: sets up what is missing, builds,
# brings up a two-node test bed in network namespaces, starts a container
# with a stateful workload on n1, live-migrates it to n2 and prints the
# report. Leaves the test bed up for exploring (`lxmig ps`, `lxmig audit
# list`); `build/cli/lxmig testbed down` removes it.
# Usage (as root): scripts/demo.sh [--mem MiB]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
MEM=64
[[ ${1:-} == --mem ]] && MEM=${2:?--mem needs MiB}
[[ $(id -u) == 0 ]] || { echo "demo: must run as root" >&2; exit 1; }

echo "==> setup (packages, CRIU)"
"$ROOT/scripts/setup.sh" --quiet
echo "==> build"
"$ROOT/scripts/build.sh" --quiet
export PATH=/opt/lxmig/bin:$PATH
LXMIG=$BUILD/cli/lxmig
WORKLOADS=$BUILD/tests/workloads

echo "==> test bed: 2 nodes"
"$LXMIG" testbed up --nodes 2
"$LXMIG" rm demo >/dev/null 2>&1 || true

echo "==> start a stateful workload on n1 ($MEM MiB of touched memory, a counter, a TCP server)"
"$LXMIG" --node n1 run --name demo --publish 7000 --bind "$WORKLOADS:/opt/lxmig-tests" -- \
  /opt/lxmig-tests/counter_server --port 7000 --fork --mem "$MEM"
IP=$("$LXMIG" --json ps | python3 -c '
import json, sys
print([c["ip"] for c in json.load(sys.stdin)["containers"] if c["name"] == "demo"][0])')
ask() { "$ROOT/scripts/testbed.sh" client -- python3 -c '
import socket,sys
for _ in range(100):
    try:
        s=socket.create_connection((sys.argv[1],7000),timeout=1); s.sendall(b"GET\n")
        print(s.recv(200).decode().strip()); break
    except OSError:
        import time; time.sleep(0.1)
' "$IP"; }
sleep 1
echo "    client sees before: $(ask)"
"$LXMIG" ps

echo "==> migrate demo: n1 -> n2"
"$LXMIG" migrate demo --to n2
echo "    client sees after:  $(ask)   (same pid and start, counter went on)"
"$LXMIG" ps
echo "==> done; explore with $LXMIG ps / audit list, remove with: $LXMIG testbed down"
