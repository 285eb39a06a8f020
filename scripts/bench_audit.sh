#!/usr/bin/env bash
# Benchmark (issue 18): audit queries at scale. One node's database with a
# year of a busy node's history (1,000,000 migrations with their phases,
# pre-copy rounds and events; synthetic, generated once and kept in --dir),
# every cookbook query of docs/audit.md timed on it (goal: each under 1 s),
# and a cluster-wide query over 20 node databases of 50,000 migrations each,
# asked one after the other and merged in memory as `lxmig audit query --all
# --merge` does (goal: under 2 s). Real SQLite files, the agent's own query
# code (store::AuditQuery), no network: the per-node gRPC hop is not in it.
# Writes docs/benchmarks-audit.json; prints a table.
# Usage: scripts/bench_audit.sh [--runs 3] [--migrations 1000000] [--dir /var/tmp/lxmig-audit-bench]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
RUNS=3
MIGRATIONS=1000000
DIR=/var/tmp/lxmig-audit-bench
while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --migrations) MIGRATIONS=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
done
"$ROOT/scripts/build.sh" --quiet
OUT="$ROOT/docs/benchmarks-audit.json"
"$BUILD/tests/bench/audit_bench" --dir "$DIR" --migrations "$MIGRATIONS" --nodes 20 --node-migrations 50000 \
  --runs "$RUNS" --cookbook "$ROOT/docs/audit.md" >"$OUT.tmp"
python3 - "$OUT.tmp" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["machine"] = {"cpus": int(sys.argv[2]), "cpu": sys.argv[3]}
json.dump(j, open(sys.argv[1], "w"), indent=2)
print(f"one node: {j['migrations']:,} migrations, {j['db_bytes'] / 2**20:.0f} MiB; medians of {j['runs']} runs")
worst = 0
for c in j["cookbook"]:
    worst = max(worst, c["median_ms"])
    flag = "  ERROR " + c["error"] if c["error"] else "  <-- over 1 s" if c["median_ms"] >= 1000 else ""
    capped = " (capped)" if c["truncated"] else "         "
    print(f"  {c['median_ms']:8.1f} ms  {c['rows']:6d} rows{capped}  {c['query']}{flag}")
print(f"  slowest cookbook query: {worst:.1f} ms (goal < 1000 ms)")
print(f"cluster: {j['nodes']} nodes x {j['node_migrations']:,} migrations, asked in turn and merged")
for c in j["cluster"]:
    error = "  ERROR " + c["error"] if c["error"] else ""
    print(f"  {c['median_ms']:8.1f} ms  {c['rows']:6d} rows  {c['query']}{error}")
PY
mv "$OUT.tmp" "$OUT"
