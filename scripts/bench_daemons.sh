#!/usr/bin/env bash
# Benchmark (issue 22): PostgreSQL 15 under pgbench, moved with pre-copy and
# with stop-and-copy, side by side in one run (order alternating), medians
# of N runs per scale, on the two-node test bed. The postmaster and its
# backends run as uid postgres; the data directory is in the container's
# writable area; pgbench runs in the client namespace (4 clients, -n).
# Per run: downtime (lxmig's report), the frozen window step by step, the
# client's longest transaction during the run (pgbench's per-transaction
# log), new connections opened every 50 ms during the run (PostgreSQL's
# psql: connect, one query, disconnect; the slowest, the median and how
# many failed), failed transactions, bytes sent before the freeze and
# inside the window.
# With --userns yes the container has a user namespace of its own
# (lxmig run --userns).
# Writes docs/benchmarks-daemons.json (-userns.json); prints a table.
# Usage (as root): scripts/bench_daemons.sh [--runs 3] [--scales "20 100"] [--userns no|yes]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=3
SCALES="20 100"
USERNS=no
bench_options "runs=RUNS scales=SCALES userns=USERNS" "$@"
[[ $USERNS =~ ^(yes|no)$ ]] || { echo "bench: --userns takes yes or no" >&2; exit 2; }
RUN_FLAGS=()
SUMMARY=$ROOT/docs/benchmarks-daemons.json
if [[ $USERNS == yes ]]; then
  RUN_FLAGS=(--userns)
  SUMMARY=$ROOT/docs/benchmarks-daemons-userns.json
fi
bench_need_root
bench_on_exit() { cp "$OUT/results.jsonl" "$ROOT/build/bench-daemons-raw.jsonl" 2>/dev/null; }
bench_scratch
bench_prepare
PG=/usr/lib/postgresql/15/bin
PROBE=$ROOT/tests/workloads/pg_connect_probe.sh  # new connections, timed
[[ -x $PG/postgres ]] || { echo "bench: PostgreSQL 15 missing (scripts/setup.sh installs it)" >&2; exit 1; }

: >"$OUT/results.jsonl"

one_run() { # scale mode run
  local scale=$1 mode=$2 run=$3 ip from to secs
  ip=$(bench_container_ip pg)
  from=$("$LXMIG" --json ps | jq -r '.containers[] | select(.name=="pg") | .node')
  to=$([[ $from == n1 ]] && echo n2 || echo n1)
  secs=$((scale >= 100 ? 50 : 25))
  rm -f "$OUT"/tx.*
  "$TB" client -- "$PG/pgbench" -h "$ip" -U postgres -n -c 4 -j 2 -T "$secs" --max-tries=1 -l \
    --log-prefix="$OUT/tx" postgres >"$OUT/pgbench.txt" 2>&1 &
  local bench=$!
  "$TB" client -- "$PROBE" "$secs" "$PG" "$ip" >"$OUT/connects.txt" 2>&1 &
  local prober=$!
  sleep 5
  local rc=0
  "$LXMIG" --json migrate pg --to "$to" --mode "$mode" >"$OUT/mig.json" 2>"$OUT/mig.err" || rc=$?
  wait "$bench" || true
  wait "$prober" || true
  python3 - "$scale" "$mode" "$run" "$rc" "$OUT" >>"$OUT/results.jsonl" <<'PY'
import glob, json, re, sys
scale, mode, run, rc, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
try:
    m = json.load(open(out + "/mig.json"))
except Exception:
    m = {"result": "no report", "error": open(out + "/mig.err").read().strip()[-300:]}
bench = open(out + "/pgbench.txt").read()
def count(label):
    g = re.search(label + r": (\d+)", bench)
    return int(g.group(1)) if g else -1
longest = 0
for f in glob.glob(out + "/tx.*"):
    for line in open(f):
        p = line.split()
        if len(p) >= 3:
            longest = max(longest, int(p[2]) // 1000)
conns = [line.split() for line in open(out + "/connects.txt") if len(line.split()) == 2]
conn_ms = sorted(int(ms) for r, ms in conns if r == "ok")
ph = {p["name"]: p for p in m.get("phases", [])}
frozen_steps = ("freeze", "final-scan", "dump", "rewrite", "net-export", "transfer", "restore")
target_steps = ("target-net-import", "target-prelayout-wait", "target-assemble", "target-lazy-start",
                "target-restore", "target-network")
before = sum(ph[k]["bytes"] for k in ("sync", "precopy") if k in ph)
inside = ph.get("transfer", {}).get("bytes", 0)
print(json.dumps({
    "scale": scale, "mode": mode, "run": run, "exit": rc,
    "result": m.get("result"), "error": m.get("error", ""), "mode_used": m.get("mode"),
    "downtime_ms": m.get("downtime_ms"), "total_ms": m.get("total_ms"),
    "longest_tx_ms": longest,
    "slowest_connection_ms": conn_ms[-1] if conn_ms else None,
    "median_connection_ms": conn_ms[len(conn_ms) // 2] if conn_ms else None,
    "connections": len(conns), "failed_connections": sum(1 for r, _ in conns if r != "ok"),
    "failed_tx": count("number of failed transactions"), "tx": count("number of transactions actually processed"),
    "bytes_before_freeze": before, "bytes_in_window": inside,
    "frozen": {k: ph[k]["duration_ms"] for k in frozen_steps if k in ph},
    "target": {k: ph[k]["duration_ms"] for k in target_steps if k in ph},
    "durable_ms": ph.get("target-durable", {}).get("duration_ms"),
    "sync_detail": ph.get("sync", {}).get("detail", ""),
    "dump_detail": ph.get("dump", {}).get("detail", ""),
    "live_ms": {k: ph[k]["duration_ms"] for k in ("sync", "precopy") if k in ph},
    "precopy_detail": ph.get("precopy", {}).get("detail", ""),
    "warnings": m.get("warnings", []),
}))
PY
  tail -1 "$OUT/results.jsonl" >&2
}

for scale in $SCALES; do
  bench_fresh_testbed
  "$LXMIG" --quiet --node n1 run --name pg "${RUN_FLAGS[@]}" --publish 5432 --bind "$WORK:/opt/lxmig-tests" -- \
    /opt/lxmig-tests/postgres_start.sh
  ip=$(bench_container_ip pg)
  for _ in $(seq 1 120); do
    [[ $("$TB" client -- psql -h "$ip" -U postgres -Atc 'select 1' postgres 2>/dev/null) == 1 ]] && break
    sleep 0.25
  done
  echo "bench: scale $scale: pgbench -i" >&2
  "$TB" client -- "$PG/pgbench" -h "$ip" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
  # The load's writes out of the way before the first measured move (the
  # first run's first mode would otherwise meet the initial checkpoint's
  # writeback, always the same mode).
  # A database that has run for a while has its shared buffers full: the
  # accounts table (larger than the 128 MB of buffers at every scale here)
  # is read into them (pg_prewarm), so that each move carries them whole.
  "$TB" client -- psql -h "$ip" -U postgres -Atc \
    "create extension if not exists pg_prewarm; select pg_prewarm('pgbench_accounts')" postgres >/dev/null
  "$TB" client -- psql -h "$ip" -U postgres -Atc CHECKPOINT postgres >/dev/null
  sync
  sleep 5
  for run in $(seq 1 "$RUNS"); do
    if ((run % 2)); then order="pre-copy stop-and-copy"; else order="stop-and-copy pre-copy"; fi
    for mode in $order; do one_run "$scale" "$mode" "$run"; done
  done
  "$LXMIG" --quiet rm pg || true
done

python3 - "$OUT/results.jsonl" "$SUMMARY" "$USERNS" <<'PY'
import json, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
summary = []
for scale in sorted({r["scale"] for r in rows}):
    by = {}
    for mode in ("pre-copy", "stop-and-copy"):
        ok = [r for r in rows if r["scale"] == scale and r["mode"] == mode and r["result"] == "committed"]
        failed = [r for r in rows if r["scale"] == scale and r["mode"] == mode and r["result"] != "committed"]
        steps = sorted({k for r in ok for k in r["frozen"]})
        tsteps = sorted({k for r in ok for k in r["target"]})
        by[mode] = {
            "runs": len(ok), "failed_runs": [r.get("error", r["result"]) for r in failed],
            "downtime_ms": med([r["downtime_ms"] for r in ok]),
            "downtimes_ms": [r["downtime_ms"] for r in ok],
            "longest_tx_ms": med([r["longest_tx_ms"] for r in ok]),
            "longest_tx_over_downtime_ms": [r["longest_tx_ms"] - r["downtime_ms"] for r in ok],
            "slowest_connection_ms": med([r.get("slowest_connection_ms") for r in ok]),
            "slowest_connection_over_downtime_ms": [r["slowest_connection_ms"] - r["downtime_ms"] for r in ok
                                                    if r.get("slowest_connection_ms") is not None],
            "median_connection_ms": med([r.get("median_connection_ms") for r in ok]),
            "failed_connections": sum(r.get("failed_connections", 0) for r in ok),
            "failed_tx": sum(max(r["failed_tx"], 0) for r in ok),
            "bytes_before_freeze": med([r["bytes_before_freeze"] for r in ok]),
            "bytes_in_window": med([r["bytes_in_window"] for r in ok]),
            "frozen_ms": {k: med([r["frozen"].get(k) for r in ok]) for k in steps},
            "target_ms": {k: med([r["target"].get(k) for r in ok]) for k in tsteps},
            "fell_back": sum(1 for r in ok if r["mode_used"] != r["mode"]),
        }
    pc, sc = by["pre-copy"]["downtime_ms"], by["stop-and-copy"]["downtime_ms"]
    summary.append({"scale": scale, **{m.replace("-", "_"): v for m, v in by.items()},
                    "ratio_precopy_to_stopcopy": round(pc / sc, 2) if pc and sc else None})
machine = subprocess.run(["sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; uname -r"],
                         capture_output=True, text=True).stdout.split("\n")
json.dump({"machine": {"cpus": machine[0], "cpu": machine[1].strip(), "kernel": machine[2]},
           "userns": sys.argv[3] == "yes",
           "summary": summary, "runs": rows}, open(sys.argv[2], "w"), indent=1)
print(f"{'scale':>5} {'mode':<14} {'downtime':>9} {'longest tx':>10} {'slowest conn':>12} {'before':>9} "
      f"{'window':>9} {'failed tx':>9} {'failed conn':>11}  frozen window (ms)")
for s in summary:
    for m in ("pre_copy", "stop_and_copy"):
        b = s[m]
        steps = " ".join(f"{k}={v}" for k, v in b["frozen_ms"].items())
        print(f"{s['scale']:>5} {m:<14} {b['downtime_ms']!s:>9} {b['longest_tx_ms']!s:>10} "
              f"{b['slowest_connection_ms']!s:>12} "
              f"{(b['bytes_before_freeze'] or 0) / 2**20:>8.0f}M {(b['bytes_in_window'] or 0) / 2**20:>8.0f}M "
              f"{b['failed_tx']:>9} {b['failed_connections']:>11}  {steps}")
        print(f"{'':>5} {'':<14} over downtime: longest tx {b['longest_tx_over_downtime_ms']}, slowest connection "
              f"{b['slowest_connection_over_downtime_ms']} (a connection takes {b['median_connection_ms']} ms "
              f"at the median)")
    print(f"{s['scale']:>5} pre-copy / stop-and-copy downtime: {s['ratio_precopy_to_stopcopy']}")
PY
