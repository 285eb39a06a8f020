#!/usr/bin/env bash
# Benchmark (issue 4, page-stream goal): the agents' bulk stream alone — one
# stream from n1 to n2's agent over the peers' mutual TLS, 1 MiB chunks with
# checksums, written into n2's images tmpfs — on the data link (what
# migrations use, AES-128-OCB), the data link held to AES-128-GCM, and the
# Transfer RPC (the fallback), side by side with
# iperf3 (single stream, plain TCP) between the same two node namespaces, in
# one run. Separates the transport from what pre-copy adds (process_vm_readv
# on the source, the page store on the target).
# Usage (as root): scripts/bench_stream.sh [--mib 1024] [--runs 3]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
MIB=1024
RUNS=3
bench_options "mib=MIB runs=RUNS" "$@"
bench_need_root
P=/run/lxbench-testbed/pki
IPERF_PID=
cleanup() {
  [[ -n $IPERF_PID ]] && kill "$IPERF_PID" 2>/dev/null || true
  "$LXMIG" testbed down >/dev/null 2>&1 || true
}
trap cleanup EXIT

bench_prepare
bench_fresh_testbed

RAW=$(mktemp /tmp/lxmig-stream.XXXXXX)
for ((run = 0; run < RUNS; run++)); do
  for link in data data-gcm grpc; do
    nsenter --net=/run/netns/lxbench-n1 -- "$BUILD/tests/bench/stream_bench" --target 10.99.0.12:7400 --link $link \
      --ca $P/ca.crt --cert $P/n1.crt --key $P/n1.key --mib "$MIB" --runs 1 | sed "s/\"run\":0/\"run\":$run/" |
      tee -a "$RAW"
  done
  nsenter --net=/run/netns/lxbench-n2 -- iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
  IPERF_PID=$!
  sleep 0.5
  nsenter --net=/run/netns/lxbench-n1 -- iperf3 -c 10.99.0.12 -p 5299 -t 4 -J |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
mib = round(r["end"]["sum_received"]["bits_per_second"] / 8 / 2**20, 1)
print(json.dumps({"iperf3_mib_per_s": mib, "run": int(sys.argv[1])}))' "$run" |
    tee -a "$RAW"
  wait "$IPERF_PID" 2>/dev/null || true
  IPERF_PID=
done
# Medians and ratios; the figures go to docs/benchmarks-stream.json.
python3 - "$RAW" "$ROOT/docs/benchmarks-stream.json" <<'PY'
import json, statistics, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda xs: statistics.median(xs) if xs else float("nan")
iperf = med([r["iperf3_mib_per_s"] for r in rows if "iperf3_mib_per_s" in r])
out = {"date": datetime.date.today().isoformat(), "iperf3_mib_per_s": iperf, "runs": rows, "links": {}}
print()
for link in ("data", "data-gcm", "grpc"):
    m = med([r["mib_per_s"] for r in rows if r.get("link") == link])
    out["links"][link] = {"mib_per_s": m, "ratio_to_iperf3": m / iperf}
    print(f"{link:8} link {m:7.0f} MiB/s  vs iperf3 {iperf:.0f} MiB/s: {m / iperf:.2f}  (goal >= 0.70)")
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
rm -f "$RAW"
