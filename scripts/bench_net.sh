#!/usr/bin/env bash
# Benchmark (issue 5): the network steps of FINAL for 10, 1,000 and 50,000
# conntrack entries of one container, side by side with conntrack-tools.
#
#  1. net_bench (two network namespaces, medians of N runs): lxmig's export
#     (libnetfilter_conntrack dump + nftables JSON export) + the wire message +
#     import (one nftables transaction + batched ctnetlink creates), against
#     `conntrack -L` + `conntrack -R` (batch) and `conntrack -L` + one
#     `conntrack -I` per entry (up to 1,000 entries; it takes minutes beyond).
#  2. Real migrations on the test bed: a container whose node holds N entries
#     of its address moves n1 -> n2 (stop-and-copy); the audit's net-export
#     and target-net-import phases are the network steps of FINAL.
# Writes docs/benchmarks-net.json; prints a table.
# Usage (as root): scripts/bench_net.sh [--runs 5] [--sizes "10 1000 50000"]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=5
SIZES="10 1000 50000"
bench_options "runs=RUNS sizes=SIZES" "$@"
bench_need_root
bench_scratch

bench_prepare

echo "bench: export+import in two namespaces, $RUNS runs per size" >&2
"$BUILD/tests/bench/net_bench" --runs "$RUNS" --sizes "$SIZES" >"$OUT/micro.jsonl"

echo "bench: migrations on the test bed" >&2
bench_fresh_testbed
: >"$OUT/migrations.jsonl"
for n in $SIZES; do
  for ((run = 1; run <= 3; run++)); do
    name=nb$n
    "$LXMIG" --quiet --node n1 run --name "$name" --publish 7300 --bind "$WORK:/opt/lxmig-tests" -- \
      /opt/lxmig-tests/seqstream --port 7300
    ip=$(bench_container_ip "$name")
    # n established flows toward the container in n1's table.
    python3 - "$ip" "$n" >"$OUT/entries" <<'PY'
import sys
ip, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    src = "10.99.%d.%d" % (100 + i // 60000, 2 + (i // 250) % 250)
    print("-I -p tcp -t 3600 --state ESTABLISHED -s %s -d %s --sport %d --dport 7300 -u SEEN_REPLY,ASSURED"
          % (src, ip, 1024 + i % 60000))
PY
    "$TB" exec n1 -- conntrack -R "$OUT/entries" >/dev/null 2>&1 || true
    "$LXMIG" --json migrate "$name" --to n2 --mode stop-and-copy >"$OUT/m.json" || true
    python3 - "$n" "$run" "$OUT/m.json" >>"$OUT/migrations.jsonl" <<'PY'
import json, sys
n, run, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
ph = {p["name"]: p for p in r.get("phases", [])}
print(json.dumps({"entries": n, "run": run, "result": r.get("result"), "downtime_ms": r.get("downtime_ms"),
                  "net_export_ms": ph.get("net-export", {}).get("duration_ms"),
                  "net_import_ms": ph.get("target-net-import", {}).get("duration_ms"),
                  "export_detail": ph.get("net-export", {}).get("detail", ""),
                  "import_detail": ph.get("target-net-import", {}).get("detail", "")}))
PY
    "$LXMIG" --quiet rm "$name"
  done
done

python3 - "$OUT/micro.jsonl" "$OUT/migrations.jsonl" "$ROOT/docs/benchmarks-net.json" <<'PY'
import json, statistics, sys
micro = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
migs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
sizes = sorted({m["entries"] for m in micro})
def med(rows, key="ms"):
    v = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(v), 1) if v else None
summary = []
print("%8s | %12s %10s %10s | %14s %8s | %14s | %20s" % ("entries", "lxmig ms", "export", "import",
      "conntrack -R", "ratio", "conntrack -I", "in a migration ms"))
for n in sizes:
    lx = [m for m in micro if m["entries"] == n and m["method"] == "lxmig"]
    cr = [m for m in micro if m["entries"] == n and m["method"] == "conntrack-R"]
    ci = [m for m in micro if m["entries"] == n and m["method"] == "conntrack-I"]
    mg = [m for m in migs if m["entries"] == n and m["result"] == "committed"]
    row = {"entries": n, "lxmig_ms": med(lx), "lxmig_export_ms": med(lx, "export_ms"),
           "lxmig_import_ms": med(lx, "import_ms"), "lxmig_moved": lx[0]["moved"] if lx else None,
           "conntrack_R_ms": med(cr), "conntrack_R_moved": cr[0]["moved"] if cr else None,
           "conntrack_I_ms": med(ci), "ratio_lxmig_to_conntrack_R": None,
           "migration_net_export_ms": med(mg, "net_export_ms"), "migration_net_import_ms": med(mg, "net_import_ms"),
           "migration_downtime_ms": med(mg, "downtime_ms"), "migrations": len(mg)}
    if row["lxmig_ms"] and row["conntrack_R_ms"]:
        row["ratio_lxmig_to_conntrack_R"] = round(row["lxmig_ms"] / row["conntrack_R_ms"], 3)
    summary.append(row)
    inmig = "-"
    if row["migration_net_export_ms"] is not None:
        inmig = "%d + %d" % (row["migration_net_export_ms"], row["migration_net_import_ms"])
    print("%8d | %12s %10s %10s | %14s %8s | %14s | %20s" % (n, row["lxmig_ms"], row["lxmig_export_ms"],
          row["lxmig_import_ms"], row["conntrack_R_ms"], row["ratio_lxmig_to_conntrack_R"],
          row["conntrack_I_ms"] if row["conntrack_I_ms"] is not None else "-", inmig))
json.dump({"summary": summary, "micro": micro, "migrations": migs}, open(sys.argv[3], "w"), indent=1)
PY
