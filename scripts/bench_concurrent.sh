#!/usr/bin/env bash
# Benchmark (issue 14): does one migration's frozen window wait behind
# another container's restore on the same node? Side by side in one run,
# medians of N runs:
#   alone       `small` (16 MiB) moves n1 -> n2 by stop-and-copy, nothing else
#               happening: its downtime
#   concurrent  the same, started the moment n1 begins restoring `big`
#               (512 MiB, stop-and-copy n2 -> n1): small's dump on n1 runs
#               during big's restore there
# Before restores ran in their own process with their CRIU options in its
# environment, a process-wide lock around CRIU made small's dump wait for
# big's restore. The ratio concurrent/alone says how much of that is left
# (the two restores and dumps still share the two vCPUs and the disk).
# Writes docs/benchmarks-concurrent.json; prints a table.
# Usage (as root): scripts/bench_concurrent.sh [--runs 5]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=5
bench_options "runs=RUNS" "$@"
bench_need_root
bench_scratch
bench_prepare
bench_fresh_testbed

"$LXMIG" --quiet --node n1 run --name small --bind "$WORK:/opt/lxmig-tests" -- \
  /opt/lxmig-tests/dirtier --port 7100 --mem 16 --rate 50
"$LXMIG" --quiet --node n2 run --name big --bind "$WORK:/opt/lxmig-tests" -- \
  /opt/lxmig-tests/dirtier --port 7100 --mem 512 --rate 50
sleep 3

downtime() {  # report.json -> ms, or "failed"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["downtime_ms"] if r["result"] == "committed" else "failed")' "$1"
}
move() {  # name from to mode out.json
  "$LXMIG" --json --node "$2" migrate "$1" --to "$3" --mode "$4" >"$5" 2>/dev/null || true
}

: >"$OUT/results.jsonl"
for ((run = 1; run <= RUNS; run++)); do
  # alone
  move small n1 n2 stop-and-copy "$OUT/a.json"
  a=$(downtime "$OUT/a.json")
  move small n2 n1 stop-and-copy "$OUT/back.json"
  # concurrent: small leaves n1 as soon as n1 restores big
  move big n2 n1 stop-and-copy "$OUT/big.json" &
  bigpid=$!
  for ((i = 0; i < 20000; i++)); do
    pgrep -f "lxmig-lxc restore .* big " >/dev/null && break
    sleep 0.001
  done
  move small n1 n2 stop-and-copy "$OUT/c.json"
  wait "$bigpid"
  c=$(downtime "$OUT/c.json")
  b=$(downtime "$OUT/big.json")
  echo "{\"run\": $run, \"alone_ms\": \"$a\", \"concurrent_ms\": \"$c\", \"big_ms\": \"$b\"}" >>"$OUT/results.jsonl"
  echo "run $run: small alone $a ms, small during big's restore $c ms (big $b ms)" >&2
  # back to the start
  move small n2 n1 stop-and-copy "$OUT/back.json"
  move big n1 n2 stop-and-copy "$OUT/back.json"
done

python3 - "$OUT/results.jsonl" "$ROOT/docs/benchmarks-concurrent.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def ok(key):
    return [int(r[key]) for r in rows if r[key] != "failed"]
alone, conc = ok("alone_ms"), ok("concurrent_ms")
res = {"runs": rows, "failed": sum(1 for r in rows for k in ("alone_ms", "concurrent_ms") if r[k] == "failed"),
       "alone_median_ms": statistics.median(alone) if alone else None,
       "concurrent_median_ms": statistics.median(conc) if conc else None}
if alone and conc:
    res["ratio"] = round(res["concurrent_median_ms"] / res["alone_median_ms"], 2)
json.dump(res, open(sys.argv[2], "w"), indent=1)
print(f"{'small downtime':<28}{'median':>8}{'min':>8}{'max':>8}")
for name, v in (("alone", alone), ("during big's restore", conc)):
    if v: print(f"{name:<28}{statistics.median(v):>8}{min(v):>8}{max(v):>8}")
print(f"ratio {res.get('ratio')}, failed runs {res['failed']}")
PY
