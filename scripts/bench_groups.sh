#!/usr/bin/env bash
# Benchmark (issue 15): what adopting a process tree and merging a
# container cost, against the frozen window of migrating the same
# processes' container, side by side in one run, medians of N runs per
# memory size, on the two-node test bed.
# Per run: a tree started on n1's host (counter_server holding SIZE MiB,
# forking, plus a shell pipeline) is adopted (`lxmig adopt`), then its
# container is migrated to n2 with stop-and-copy and back with pre-copy.
# Then the tree's processes are merged into a fresh container of n1
# (`lxmig merge side tree --name side`: its clocks read ahead of the
# migrated tree's, so theirs only move forward).
# Compared: adopt's and merge's downtime (the processes are stopped from
# the dump's start to the commit) with stop-and-copy's downtime of the same
# processes' container and with its frozen window without the transfer step
# (the same dump and restore, no network) - the issue's goal is adopt and
# merge <= 1.5x the latter.
# Failed runs are counted and shown, never dropped.
# Usage (as root): scripts/bench_groups.sh [--runs 3] [--sizes "16 256"]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=3
SIZES="16 256"
bench_options "runs=RUNS sizes=SIZES" "$@"
bench_need_root
bench_on_exit() { cp "$OUT/results.jsonl" "$ROOT/build/bench-groups-raw.jsonl" 2>/dev/null; }
bench_scratch
bench_prepare
bench_fresh_testbed
: >"$OUT/results.jsonl"
DIR=$OUT/tree
mkdir -p "$DIR"

one_run() { # size run
  local size=$1 run=$2 name="tree$1x$2" root rc=0 port=7100
  root=$("$TB" exec n1 -- /bin/sh -c "cd / && setsid sh -c 'cd $DIR && $WORK/counter_server --port $port \
--mem $size --fork & i=0; while :; do i=\$((i+1)); echo \$i; sleep 0.1; done | while read n; do echo \$n > $DIR/last; \
done' </dev/null >/dev/null 2>&1 & echo \$!")
  for _ in $(seq 100); do
    "$TB" exec n1 -- bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && echo GET >&3 && timeout 2 head -n 1 <&3" \
      2>/dev/null | grep -q counter= && break
    sleep 0.2
  done
  "$LXMIG" --node n1 --json adopt --pid "$root" --bind "$DIR" --bind "$WORK" --name "$name" --publish "$port" \
    >"$OUT/adopt.json" 2>"$OUT/adopt.err" || rc=$?
  local sc=0 pc=0
  if ((rc == 0)); then
    "$LXMIG" --json migrate "$name" --to n2 --mode stop-and-copy >"$OUT/sc.json" 2>"$OUT/sc.err" || sc=$?
    "$LXMIG" --json migrate "$name" --to n1 --mode pre-copy >"$OUT/pc.json" 2>"$OUT/pc.err" || pc=$?
  fi
  local side="side$1x$2" mc=0
  rm -f "$OUT"/merge.{json,err}
  if ((rc == 0)); then
    # A fresh container whose clocks read ahead of the migrated tree's: the
    # tree's processes join it (their clocks only move forward).
    if "$LXMIG" --node n1 run --name "$side" --bind "$DIR:$DIR:rw" --bind "$WORK" -- sleep 1000000 \
      >/dev/null 2>"$OUT/merge.err"; then
      "$LXMIG" --json merge "$side" "$name" --name "$side" >"$OUT/merge.json" 2>>"$OUT/merge.err" || mc=$?
    else
      mc=1
    fi
  fi
  "$LXMIG" rm "$side" >/dev/null 2>&1 || true
  "$LXMIG" rm "$name" >/dev/null 2>&1 || true
  # Not adopted: the tree still runs on the host, in its session.
  ((rc == 0)) || kill -KILL -- "-$root" 2>/dev/null || true
  python3 - "$size" "$run" "$rc" "$sc" "$pc" "$OUT" >>"$OUT/results.jsonl" <<'PY'
import json, sys
size, run, rc, sc, pc = (int(x) for x in sys.argv[1:6])
out = sys.argv[6]
def load(name, code):
    try:
        j = json.load(open(f"{out}/{name}.json"))
        return j["reports"][0] if j.get("reports") else j.get("report", j)
    except Exception:
        try:
            err = open(f"{out}/{name}.err").read().strip()[-300:]
        except Exception:
            err = "not run"
        return {"result": "no report", "error": err}
def phase(r, name):
    return sum(p.get("duration_ms", 0) for p in r.get("phases", []) if p.get("name") == name)
a, s, p = load("adopt", rc), load("sc", sc), load("pc", pc)
m = load("merge", 0)
row = {"size_mib": size, "run": run,
       "merge": {"result": m.get("result"), "downtime_ms": m.get("downtime_ms"), "dump_ms": phase(m, "dump"),
                 "restore_ms": phase(m, "restore"), "error": m.get("error", "")},
       "adopt": {"result": a.get("result"), "downtime_ms": a.get("downtime_ms"), "dump_ms": phase(a, "dump"),
                 "restore_ms": phase(a, "restore"), "error": a.get("error", "")},
       "stop_and_copy": {"result": s.get("result"), "downtime_ms": s.get("downtime_ms"), "dump_ms": phase(s, "dump"),
                         "transfer_ms": phase(s, "transfer"), "restore_ms": phase(s, "restore"),
                         "error": s.get("error", "")},
       "pre_copy": {"result": p.get("result"), "downtime_ms": p.get("downtime_ms"), "error": p.get("error", "")}}
print(json.dumps(row))
PY
}

for size in $SIZES; do
  for run in $(seq "$RUNS"); do
    echo "bench: ${size} MiB, run $run" >&2
    one_run "$size" "$run"
  done
done

python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs):
    xs = [x for x in xs if x is not None and x >= 0]
    return statistics.median(xs) if xs else float("nan")
print(f"{'SIZE':>8} {'RUNS':>4} {'ADOPT':>8} {'S&C':>8} {'S&C-NET':>8} {'PRE-COPY':>9} "
      f"{'ADOPT/S&C-NET':>14} {'ADOPT/S&C':>10} FAILED")
for size in sorted({r["size_mib"] for r in rows}):
    rs = [r for r in rows if r["size_mib"] == size]
    ok = [r for r in rs if r["adopt"]["result"] == "committed" and r["stop_and_copy"]["result"] == "committed"]
    failed = [f'{k}: {r[k]["error"][:80]}' for r in rs for k in ("adopt", "stop_and_copy", "pre_copy")
              if r[k]["result"] != "committed"]
    a = med([r["adopt"]["downtime_ms"] for r in ok])
    s = med([r["stop_and_copy"]["downtime_ms"] for r in ok])
    sn = med([r["stop_and_copy"]["downtime_ms"] - r["stop_and_copy"]["transfer_ms"] for r in ok])
    p = med([r["pre_copy"]["downtime_ms"] for r in ok if r["pre_copy"]["result"] == "committed"])
    print(f"{str(size) + ' MiB':>8} {len(rs):>4} {a:>6.0f}ms {s:>6.0f}ms {sn:>6.0f}ms {p:>7.0f}ms "
          f"{a / sn:>14.2f} {a / s:>10.2f} "
          f"{len(failed)}{': ' + '; '.join(failed) if failed else ''}")
print()
print(f"{'SIZE':>8} {'RUNS':>4} {'MERGE':>8} {'S&C':>8} {'S&C-NET':>8} {'MERGE/S&C-NET':>14} {'MERGE/S&C':>10} FAILED")
for size in sorted({r["size_mib"] for r in rows}):
    rs = [r for r in rows if r["size_mib"] == size]
    ok = [r for r in rs if r["merge"]["result"] == "committed" and r["stop_and_copy"]["result"] == "committed"]
    failed = [f'merge: {r["merge"]["error"][:80]}' for r in rs if r["merge"]["result"] != "committed"]
    m = med([r["merge"]["downtime_ms"] for r in ok])
    s = med([r["stop_and_copy"]["downtime_ms"] for r in ok])
    sn = med([r["stop_and_copy"]["downtime_ms"] - r["stop_and_copy"]["transfer_ms"] for r in ok])
    print(f"{str(size) + ' MiB':>8} {len(rs):>4} {m:>6.0f}ms {s:>6.0f}ms {sn:>6.0f}ms {m / sn:>14.2f} {m / s:>10.2f} "
          f"{len(failed)}{': ' + '; '.join(failed) if failed else ''}")
PY
