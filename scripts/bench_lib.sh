# Shared by the test-bed benchmarks (sourced, not run): paths, the
# environment they all need, and helpers. The test bed's prefix is lxbench,
# so a benchmark never touches the tests' (lxit) or the demo's (lxmig).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
LXMIG=$BUILD/cli/lxmig
TB="$ROOT/scripts/testbed.sh"
WORK=$BUILD/tests/workloads
export LXMIG_TESTBED_PREFIX=lxbench
export PATH=/opt/lxmig/bin:$PATH

# A bench script's options: `bench_options "runs=RUNS sizes=SIZES" "$@"` sets
# RUNS from --runs N and SIZES from --sizes "..."; anything else, or an
# option without its value, exits 2.
bench_options() {
  local spec=$1 pair found
  shift
  while (($#)); do
    found=""
    for pair in $spec; do
      if [[ $1 == "--${pair%%=*}" ]]; then
        (($# >= 2)) || { echo "bench: $1 needs a value" >&2; exit 2; }
        printf -v "${pair#*=}" '%s' "$2"
        found=1
        shift 2
        break
      fi
    done
    [[ -n $found ]] || { echo "bench: unknown option $1" >&2; exit 2; }
  done
}

bench_need_root() {
  [[ $(id -u) == 0 ]] || { echo "bench: must run as root" >&2; exit 1; }
}

# Installs what is missing and builds (both idempotent).
bench_prepare() {
  "$ROOT/scripts/setup.sh" --quiet
  "$ROOT/scripts/build.sh" --quiet
}

# The address of container $1, from `lxmig ps`.
bench_container_ip() {
  "$LXMIG" --json ps | python3 -c '
import json, sys
print([c["ip"] for c in json.load(sys.stdin)["containers"] if c["name"] == sys.argv[1]][0])' "$1"
}

# A scratch directory, $OUT; on exit the test bed goes down and $OUT is
# removed, after the caller's bench_on_exit if it defines one (to keep raw
# results, stop a prober).
bench_scratch() {
  OUT=$(mktemp -d /tmp/lxmig-bench.XXXXXX)
  trap bench_cleanup EXIT
}
bench_cleanup() {
  if [[ $(type -t bench_on_exit) == function ]]; then bench_on_exit || true; fi
  "$LXMIG" testbed down >/dev/null 2>&1 || true
  rm -rf "$OUT"
}

# A two-node test bed from scratch.
# The state directories of the test bed's two nodes.
S1=/var/lib/$LXMIG_TESTBED_PREFIX-testbed/n1
S2=/var/lib/$LXMIG_TESTBED_PREFIX-testbed/n2

bench_fresh_testbed() {
  "$LXMIG" testbed down >/dev/null 2>&1 || true
  "$LXMIG" testbed up --nodes 2 >/dev/null
}

# Waits until counter_server in container $1 answers GET on port 7000 from
# the client namespace (at most a minute); fails when it never does.
bench_wait_counter() {
  local ip
  ip=$(bench_container_ip "$1")
  "$TB" client -- python3 - "$ip" <<'PY'
import socket, sys, time
for _ in range(600):
    try:
        s = socket.create_connection((sys.argv[1], 7000), timeout=1); s.sendall(b"GET\n")
        if b"counter=" in s.recv(200): sys.exit(0)
    except OSError: pass
    time.sleep(0.1)
sys.exit(1)
PY
}
