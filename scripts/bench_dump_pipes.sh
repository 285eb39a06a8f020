#!/usr/bin/env bash
# Benchmark (issue 16): CRIU's dump of a 1 GiB process with its pipes held
# to fs.pipe-max-size = 1 MiB (a host whose root lacks CAP_SYS_RESOURCE,
# as here) against 4 MiB (what CRIU asks for), side by side in one run,
# alternating. The pages go to links to /dev/null, as in a pre-copy dump
# (container/lxc_host.cc), so what is timed is CRIU's drain through its
# parasite, not a write. No container, no agent: `criu dump
# --leave-running` of a dirtier in a network namespace of its own.
# The host's fs.pipe-max-size is set back at exit.
# Usage (as root): scripts/bench_dump_pipes.sh [--runs 5] [--mem 1024]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=5
MEM=1024
bench_options "runs=RUNS mem=MEM" "$@"
[[ $RUNS =~ ^[1-9][0-9]?$ && $MEM =~ ^[1-9][0-9]{0,4}$ ]] || { echo "bench: --runs 1-99, --mem MiB" >&2; exit 2; }
bench_need_root
HOST_PIPE_MAX=$(cat /proc/sys/fs/pipe-max-size)
DIR=$(mktemp -d /tmp/lxmig-dump-pipes.XXXXXX)
PID=""
cleanup() {
  echo "$HOST_PIPE_MAX" >/proc/sys/fs/pipe-max-size
  [[ -z $PID ]] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
  rm -rf "$DIR"
}
trap cleanup EXIT
"$ROOT/scripts/build.sh" --quiet

# The dirtier as the only process of a new network namespace (its port on
# that namespace's loopback), writing 2% of its pages a second.
rate=$((MEM * 256 / 50))
unshare -n "$WORK/dirtier" --port 7999 --mem "$MEM" --rate "$rate" </dev/null >/dev/null 2>&1 &
PID=$!
sleep 3
kill -0 "$PID" || { echo "bench: the dirtier did not start" >&2; exit 1; }

echo "pipe-max-size  run  dump ms  pipes grown  parasite calls"
for ((i = 1; i <= RUNS; i++)); do
  if ((i % 2)); then order="1048576 4194304"; else order="4194304 1048576"; fi
  for size in $order; do
    echo "$size" >/proc/sys/fs/pipe-max-size
    rm -rf "$DIR/img"
    mkdir "$DIR/img"
    for k in $(seq 1 8); do ln -s /dev/null "$DIR/img/pages-$k.img"; done
    t0=$(date +%s%N)
    rc=0
    timeout 120 criu dump -t "$PID" -D "$DIR/img" --leave-running --shell-job -o dump.log -v4 \
      >/dev/null 2>&1 || rc=$?
    t1=$(date +%s%N)
    if ((rc != 0)); then
      echo "$size  $i  FAILED (criu exit $rc; log: $(tail -1 "$DIR/img/dump.log"))"
      continue
    fi
    printf '%-13s  %3d  %7d  %11d  %14d\n' "$size" "$i" $(((t1 - t0) / 1000000)) \
      "$(grep -c 'Grow pipe' "$DIR/img/dump.log")" "$(grep -c 'PPB:' "$DIR/img/dump.log")"
  done
done
