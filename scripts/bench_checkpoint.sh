#!/usr/bin/env bash
# Benchmark (issue 19, checkpoint/restore): a counter_server container that
# touched 64 and 256 MiB saved to a file on n1 and continued from it on n2,
# lxmig (checkpoint --export, restore --import) vs. plain LXC (lxc-checkpoint
# -s, tar of images, writable area and config into one file; untar on n2,
# lxc-checkpoint -r), in one run, side by side, the order alternating.
# Prints a table of medians and writes docs/benchmarks-checkpoint.json.
# Usage (as root): scripts/bench_checkpoint.sh [--runs 3] [--sizes "64 256"]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=3
SIZES="64 256"
bench_options "runs=RUNS sizes=SIZES" "$@"
bench_need_root
bench_on_exit() { cp "$OUT/results.txt" "$ROOT/build/bench-checkpoint-raw.txt" 2>/dev/null; }
bench_scratch

bench_prepare
bench_fresh_testbed
FILES=/var/tmp/lxmig-bench-checkpoint  # on disk, as a backup would be
mkdir -p "$FILES"
now_ms() { date +%s%3N; }

start_counter() {  # name size
  "$LXMIG" --quiet --node n1 run --name "$1" --publish 7000 --bind "$WORK:/opt/lxmig-tests" -- \
    /opt/lxmig-tests/counter_server --port 7000 --fork --mem "$2"
  bench_wait_counter "$1"
}

run_lxmig() {  # size run
  local size=$1 run=$2 name file t0 t1 t2 state=RUNNING
  name=c${size}x$run
  file=$FILES/$name.ckpt
  start_counter "$name" "$size"
  t0=$(now_ms)
  "$LXMIG" --quiet checkpoint "$name" --export "$file" || state=FAILED
  t1=$(now_ms)
  "$LXMIG" --quiet --node n2 restore --import "$file" || state=FAILED
  bench_wait_counter "$name" || state=FAILED
  t2=$(now_ms)
  echo "lxmig $size $run $state $((t1 - t0)) $((t2 - t1)) $(stat -c %s "$file" 2>/dev/null || echo 0)" \
    >>"$OUT/results.txt"
  "$LXMIG" --quiet rm "$name" >/dev/null 2>&1 || true
  rm -f "$file"
}

run_plain() {  # size run
  local size=$1 run=$2 name file img1 img2 t0 t1 t2 state
  name=p${size}x$run
  file=$FILES/$name.tar
  img1=$S1/state/images/base-$name
  img2=$S2/state/images/base-$name
  start_counter "$name" "$size"
  t0=$(now_ms)
  "$TB" exec n1 -- lxc-checkpoint -s -P "$S1/lxc" -n "$name" -D "$img1"
  # Images live in the agent's private tmpfs: read them through its mount namespace.
  "$TB" exec n1 -- tar -C "$S1" -cf - "state/images/base-$name" "lxc/$name/rootfs" "lxc/$name/lxmig.json" \
    "lxc/$name/config" >"$file"
  sync "$file"
  t1=$(now_ms)
  "$TB" exec n2 -- tar -C "$S2" -xf - <"$file"
  sed -i -e "s#$S1#$S2#g" -e "s#lxbench-n1/#lxbench-n2/#g" "$S2/lxc/$name/config"
  "$TB" exec n2 -- env LXMIG_CRIU_RESTORE_OPTS="--cgroup-root /lxbench-n2/payload.$name" \
    lxc-checkpoint -r -P "$S2/lxc" -n "$name" -D "$img2" </dev/null >/dev/null 2>&1 || true
  "$TB" exec n2 -- sh -c \
    "echo THAWED > /sys/fs/cgroup/freezer/lxbench-n2/payload.$name/freezer.state 2>/dev/null || true"
  state=$("$TB" exec n2 -- lxc-info -s -H -P "$S2/lxc" -n "$name" 2>/dev/null || echo FAILED)
  t2=$(now_ms)
  [[ $state == RUNNING ]] || echo "bench: baseline restore of $name ended $state" >&2
  echo "plain $size $run $state $((t1 - t0)) $((t2 - t1)) $(stat -c %s "$file")" >>"$OUT/results.txt"
  "$TB" exec n2 -- lxc-stop -k -P "$S2/lxc" -n "$name" >/dev/null 2>&1 || true
  "$TB" exec n2 -- rm -rf "$S2/lxc/$name" "$img2"
  "$TB" exec n1 -- rm -rf "$img1"
  "$LXMIG" --quiet --node n1 rm "$name" >/dev/null 2>&1 || rm -rf "$S1/lxc/$name"
  rm -f "$file"
}

for size in $SIZES; do
  for run in $(seq "$RUNS"); do
    if ((run % 2)); then run_lxmig "$size" "$run"; run_plain "$size" "$run"
    else run_plain "$size" "$run"; run_lxmig "$size" "$run"; fi
  done
done
rmdir "$FILES" 2>/dev/null || true

python3 - "$OUT/results.txt" "$ROOT/docs/benchmarks-checkpoint.json" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
out = {}
print(f"{'MiB':>5} {'lxmig save':>10} {'lxmig restore':>13} {'plain save':>10} {'plain restore':>13} "
      f"{'ratio':>6} {'file/plain':>10} {'failed':>6}")
med = lambda rs, i: statistics.median(int(r[i]) for r in rs) if rs else float('nan')
for size in sorted({int(r[1]) for r in rows}):
    lx = [r for r in rows if r[0] == 'lxmig' and int(r[1]) == size and r[3] == 'RUNNING']
    pl = [r for r in rows if r[0] == 'plain' and int(r[1]) == size and r[3] == 'RUNNING']
    failed = len([r for r in rows if int(r[1]) == size and r[3] != 'RUNNING'])
    ls, lr, lb = med(lx, 4), med(lx, 5), med(lx, 6)
    ps, pr, pb = med(pl, 4), med(pl, 5), med(pl, 6)
    ratio = (ls + lr) / (ps + pr) if pl else float('nan')
    out[size] = {"lxmig_save_ms": ls, "lxmig_restore_ms": lr, "lxmig_file_bytes": lb, "plain_save_ms": ps,
                 "plain_restore_ms": pr, "plain_file_bytes": pb, "ratio_total": ratio, "failed_runs": failed,
                 "runs": len(lx)}
    print(f"{size:>5} {ls:>10.0f} {lr:>13.0f} {ps:>10.0f} {pr:>13.0f} {ratio:>6.2f} {lb / pb:>10.2f} {failed:>6}")
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
