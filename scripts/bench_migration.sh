#!/usr/bin/env bash
# Benchmark (issue 2): stop-and-copy migration of containers whose workload
# touched 64, 256 and 1024 MiB, lxmig vs. plain lxc-checkpoint (dump + copy +
# restore) between the same two test-bed nodes, in one run, side by side.
# Prints a table of medians and writes docs/benchmarks-migration.json.
# Usage (as root): scripts/bench_migration.sh [--runs 4] [--sizes "64 256 1024"]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=4
SIZES="64 256 1024"
bench_options "runs=RUNS sizes=SIZES" "$@"
bench_need_root
bench_on_exit() { cp "$OUT/results.txt" "$ROOT/build/bench-migration-raw.txt" 2>/dev/null; }
bench_scratch

bench_prepare
bench_fresh_testbed

now_ms() { date +%s%3N; }

# One measured migration each way; in a VM the first use of guest memory
# is slow, so the order alternates between runs to be fair to both.
run_lxmig() {  # size run
  local size=$1 run=$2 name
  name=b${size}x$run
  "$LXMIG" --quiet --node n1 run --name "$name" --publish 7000 --bind "$WORK:/opt/lxmig-tests" -- \
    /opt/lxmig-tests/counter_server --port 7000 --fork --mem "$size"
  bench_wait_counter "$name"
  "$LXMIG" --json migrate "$name" --to n2 --mode stop-and-copy >"$OUT/lxmig-$size-$run.json" || true
  python3 - "$OUT/lxmig-$size-$run.json" "$size" "$run" >>"$OUT/results.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ph = {p["name"]: p["duration_ms"] for p in r["phases"]}
print("lxmig", sys.argv[2], sys.argv[3], r["result"], r["total_ms"], r["downtime_ms"],
      "dump=%s transfer=%s restore=%s" % (ph.get("dump"), ph.get("transfer"), ph.get("restore")))
PY
  "$LXMIG" --quiet rm "$name"
}

run_plain() {  # size run
  local size=$1 run=$2 name img1 img2 t0 t1 t2 t3 pstate
  # lxc-checkpoint dump on n1, plain copy, lxc-checkpoint restore on n2
  name=p${size}x$run
  "$LXMIG" --quiet --node n1 run --name "$name" --publish 7000 --bind "$WORK:/opt/lxmig-tests" -- \
    /opt/lxmig-tests/counter_server --port 7000 --fork --mem "$size"
  bench_wait_counter "$name"
  img1=$S1/state/images/base-$name; img2=$S2/state/images/base-$name
  t0=$(now_ms)
  "$TB" exec n1 -- lxc-checkpoint -s -P "$S1/lxc" -n "$name" -D "$img1"
  t1=$(now_ms)
  "$TB" exec n2 -- mkdir -p "$S2/lxc/$name" "$img2"
  # Images live in each agent's private tmpfs: copy through the agents' mount namespaces.
  "$TB" exec n1 -- tar -C "$img1" -cf - . | "$TB" exec n2 -- tar -C "$img2" -xf -
  "$TB" exec n1 -- tar -C "$S1/lxc/$name" -cf - rootfs lxmig.json | "$TB" exec n2 -- tar -C "$S2/lxc/$name" -xf -
  sed -e "s#$S1#$S2#g" -e "s#lxbench-n1/#lxbench-n2/#g" "$S1/lxc/$name/config" >"$S2/lxc/$name/config"
  t2=$(now_ms)
  "$TB" exec n2 -- env LXMIG_CRIU_RESTORE_OPTS="--cgroup-root /lxbench-n2/payload.$name" \
    lxc-checkpoint -r -P "$S2/lxc" -n "$name" -D "$img2" </dev/null >/dev/null 2>&1
  "$TB" exec n2 -- sh -c \
    "echo THAWED > /sys/fs/cgroup/freezer/lxbench-n2/payload.$name/freezer.state 2>/dev/null || true"
  t3=$(now_ms)
  pstate=$("$TB" exec n2 -- lxc-info -s -H -P "$S2/lxc" -n "$name" 2>/dev/null || echo FAILED)
  [[ $pstate == RUNNING ]] || echo "bench: baseline restore of $name ended $pstate" >&2
  echo "plain $size $run $pstate $((t3 - t0)) $((t3 - t0))" \
    "dump=$((t1 - t0)) copy=$((t2 - t1)) restore=$((t3 - t2))" >>"$OUT/results.txt"
  "$TB" exec n2 -- lxc-stop -k -P "$S2/lxc" -n "$name" >/dev/null 2>&1 || true
  "$TB" exec n2 -- rm -rf "$S2/lxc/$name" "$img2"
  "$TB" exec n1 -- rm -rf "$img1"
  "$LXMIG" --quiet --node n1 rm "$name" >/dev/null 2>&1 || rm -rf "$S1/lxc/$name"
}

for size in $SIZES; do
  for run in $(seq "$RUNS"); do
    if ((run % 2)); then run_lxmig "$size" "$run"; run_plain "$size" "$run"
    else run_plain "$size" "$run"; run_lxmig "$size" "$run"; fi
  done
done

python3 - "$OUT/results.txt" "$ROOT/docs/benchmarks-migration.json" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
out = {}
print(f"{'MiB':>6} {'lxmig total':>12} {'lxmig down':>11} {'plain total':>12} {'ratio':>6}")
for size in sorted({int(r[1]) for r in rows}):
    lx = [r for r in rows if r[0] == 'lxmig' and int(r[1]) == size and r[3] == 'committed']
    pl = [r for r in rows if r[0] == 'plain' and int(r[1]) == size and r[3] == 'RUNNING']
    lt = statistics.median(int(r[4]) for r in lx) if lx else float('nan')
    ld = statistics.median(int(r[5]) for r in lx) if lx else float('nan')
    pt = statistics.median(int(r[4]) for r in pl) if pl else float('nan')
    out[size] = {"lxmig_total_ms": lt, "lxmig_downtime_ms": ld, "plain_total_ms": pt,
                 "ratio": lt / pt if pt else None, "runs": len(lx)}
    print(f"{size:>6} {lt:>12.0f} {ld:>11.0f} {pt:>12.0f} {lt/pt:>6.2f}")
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
