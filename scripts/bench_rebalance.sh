#!/usr/bin/env bash
# Benchmark (issue 17): the rebalancer's planner (sched::plan) on synthetic
# clusters of 100 nodes / 2,000 containers, 1,000 / 20,000 and 10,000 /
# 100,000 (skewed, device-bound and pinned containers), side by side with
# Incus's rule and a greedy "most loaded to least loaded" baseline in the
# same run; then 100 hourly periods of noisy load, counting containers that
# went back within the cooldown. Pure computation on one core: no agents.
# Writes docs/benchmarks-rebalance.json; prints a table. With --seeds, also
# lxmig and greedy on other seeds of the same generator (11 clusters of 100
# nodes, 6 of 1,000, 3 of 10,000; seed 42 + nodes + k, k = 0 the main
# table's), a line per seed in the table and under "seeds" in the JSON.
# Usage: scripts/bench_rebalance.sh [--seeds]
set -euo pipefail
SEEDS=0
[[ ${1:-} == --seeds ]] && SEEDS=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
# Only what it runs (the planner and the benchmark), one job: a benchmark
# need not wait for the rest of the tree, nor fail on it.
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$BUILD" -j1 --target rebalance_bench >"$BUILD/bench_rebalance.log" 2>&1 ||
  { tail -50 "$BUILD/bench_rebalance.log" >&2; exit 1; }
OUT="$ROOT/docs/benchmarks-rebalance.json"
taskset -c 0 "$BUILD/tests/bench/rebalance_bench" >"$OUT.tmp"
: >"$OUT.seeds"
if ((SEEDS)); then
  for size in "100 2000 11" "1000 20000 6" "10000 100000 3"; do
    # shellcheck disable=SC2086
    taskset -c 0 "$BUILD/tests/bench/rebalance_bench" --seeds $size >>"$OUT.seeds"
  done
fi
python3 - "$OUT.tmp" "$OUT.seeds" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
seeds = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
if seeds:
    j["seeds"] = seeds
    json.dump(j, open(sys.argv[1], "w"), indent=2)
for r in j["clusters"]:
    print(f"{r['nodes']:,} nodes, {r['containers']:,} containers (peak RSS {r['peak_rss_kib'] / 1024:.0f} MiB)")
    for k in ("lxmig", "greedy", "incus"):
        o = r[k]
        print(f"  {k:7s} {o['plan_ms']:9.1f} ms  spread {o['spread_before']:.3f} -> {o['spread_after']:.3f}"
              f"  moves {o['moves']:6d}  {o['bytes'] / 2**30:9.1f} GiB")
    print(f"  lxmig: {r['lxmig'].get('verdict', '')}")
p = j["pingpong"]
print(f"ping-pong: {p['periods']} periods, {p['moves']} moves, {p['back_within_cooldown']} back within the cooldown")
for r in seeds:
    lx, g = r["lxmig"], r["greedy"]
    ratio = f"{lx['bytes'] / g['bytes']:.3f}" if g["bytes"] else "-"
    print(f"seed {r['seed']:6d}: lxmig {lx['spread_after']:.3f} {lx['bytes'] / 2**30:9.1f} GiB {lx['plan_ms']:8.1f} ms"
          f" | greedy {g['spread_after']:.3f} {g['bytes'] / 2**30:9.1f} GiB | bytes / greedy's {ratio}"
          + ("" if g["spread_after"] <= 0.10 else " (greedy stuck)"))
PY
rm -f "$OUT.seeds"
mv "$OUT.tmp" "$OUT"
