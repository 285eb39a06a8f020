#!/usr/bin/env bash
# Benchmark (issue 4): pre-copy vs. stop-and-copy, side by side in one run,
# medians of N runs (order alternating), on the two-node test bed.
#   W1  64 MiB, mostly idle (dirtier --rate 50)
#   W2  1 GiB writing 2% of its pages per second
#   W3  1 GiB writing 50% of its pages per second
#   W4  redis-server holding ~500 MB under redis-benchmark load from the client
#   W5  4 GiB writing 2% of its pages per second, pre-copy only; W5disk the
#       same with n2's images tmpfs at 1 GiB (its images go to disk)
#   floor: a container with almost no memory, stop-and-copy (freeze, dump,
#          restore and their fixed costs)
# Per run: downtime (freeze to running on the target, lxmig's report), what
# a client in the client namespace saw (the longest gap between two answers
# on an established stream, the longest time a new connection took to be
# answered, connections that failed), total time, bytes on the wire, rounds.
#   stream: the page stream against iperf3, side by side: per run one iperf3
#           single stream n1 -> n2 over the fabric, then a W2 pre-copy
#           migration without the client probe (its 200 connections a second
#           load the two shared vCPUs that iperf3 has to itself); the page
#           stream is round 0's send rate. The W2-W4 rows show round 0 under
#           the probe too.
# Writes docs/benchmarks-precopy.json; prints a table; keeps the raw rows and the
# agents' logs of the last run in build/bench-precopy-{raw.jsonl,n1.log,n2.log}.
#   hold: W1 pre-copy with n1 holding the frozen window's packets (the
#         default) against W1drop, the same with hold_queue off (dropped)
#   M4: a 4 MiB container (dirtier --mem 4 --rate 50), both modes
#   auto: M4 and W1-W4, each moved with --mode auto,
#         pre-copy and stop-and-copy in one run (order rotating): auto's
#         downtime against the better of the two
# --pipe-max-size BYTES: fs.pipe-max-size for the run (set at the start,
#   the host's value back at exit; every row records the value in effect).
#   Without CAP_SYS_RESOURCE CRIU's dump pipes are held to it (docs/
#   operations.md, "CRIU's dump pipes"): 1048576 against 4194304 is the A/B.
# Usage (as root): scripts/bench_precopy.sh [--runs 3] [--only "floor W1 W2 W3 W4 W5 stream hold auto"]
#                  [--pipe-max-size BYTES]
set -euo pipefail
source "$(dirname "$0")/bench_lib.sh"
RUNS=3
ONLY="floor W1 W2 W3 W4 W5 stream hold auto"
PIPE_MAX=""
bench_options "runs=RUNS only=ONLY pipe-max-size=PIPE_MAX" "$@"
[[ -z $PIPE_MAX || $PIPE_MAX =~ ^[1-9][0-9]{0,9}$ ]] || { echo "bench: --pipe-max-size takes bytes" >&2; exit 2; }
bench_need_root
HOST_PIPE_MAX=$(cat /proc/sys/fs/pipe-max-size)
bench_on_exit() {
  [[ -z ${PROBE_STOP:-} ]] || touch "$PROBE_STOP"
  cp "$OUT/results.jsonl" "$ROOT/build/bench-precopy-raw.jsonl" 2>/dev/null
  # The agents' logs of the run, for an outlier's why (the test bed goes).
  for n in n1 n2; do
    cp "/run/$LXMIG_TESTBED_PREFIX-testbed/$n/agent.log" "$ROOT/build/bench-precopy-$n.log" 2>/dev/null || true
  done
  echo "$HOST_PIPE_MAX" >/proc/sys/fs/pipe-max-size
}
bench_scratch
PROBE_STOP=$OUT/probe.stop
[[ -z $PIPE_MAX ]] || echo "$PIPE_MAX" >/proc/sys/fs/pipe-max-size

bench_prepare
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  # Benchmark-only dependency; policy-rc.d keeps the service from starting.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi
bench_fresh_testbed

# Client probe in the client namespace, until $PROBE_STOP exists:
#  - an established stream: one connection, a request every 5 ms (dirtier
#    echoes lines after ECHO; redis answers PING), the longest gap between
#    two answers;
#  - new connections: one every 20 ms, each in its own thread with a 10 s
#    bound (a SYN dropped during the freeze costs 1 s, so a short timeout
#    would hide it): the longest connect-and-answer time and the failures.
cat >"$OUT/probe.py" <<'PY'
import os, socket, sys, time, json, threading
ip, port, kind, stop, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
req = b"*1\r\n$4\r\nPING\r\n" if kind == "redis" else b"GET\n"
lock = threading.Lock()
conns = []
def one():
    t0, at, ok = time.monotonic(), time.time(), False
    try:
        s = socket.create_connection((ip, port), timeout=10)
        s.settimeout(10)
        s.sendall(req)
        ok = bool(s.recv(100))
        s.close()
    except OSError:
        pass
    with lock:
        conns.append((ok, (time.monotonic() - t0) * 1000, at))
gap, answers, broken = 0.0, 0, False
def stream():
    global gap, answers, broken
    try:
        s = socket.create_connection((ip, port), timeout=10)
        s.settimeout(10)
        line = req
        if kind != "redis":
            s.sendall(b"ECHO\n"); time.sleep(0.05); line = b"x\n"
        last = time.monotonic()
        while not os.path.exists(stop):
            s.sendall(line)
            if not s.recv(100): raise OSError("closed")
            now = time.monotonic()
            gap = max(gap, now - last); last = now; answers += 1
            time.sleep(0.005)
    except OSError:
        broken = True
st = threading.Thread(target=stream); st.start()
threads = []
while not os.path.exists(stop):
    t = threading.Thread(target=one); t.start(); threads.append(t)
    time.sleep(0.02)
for t in threads: t.join()
st.join()
json.dump({"max_gap_ms": round(gap * 1000), "answers": answers, "stream_broken": broken,
           "new_conns": len(conns), "new_conn_failed": sum(1 for ok, _, _ in conns if not ok),
           "new_conn_failed_at_ms": [round(at * 1000) for ok, _, at in conns if not ok],
           "new_conn_max_ms": round(max([ms for _, ms, _ in conns] or [0])),
           "new_conn_slowest_at_ms": round(max(conns, key=lambda c: c[1])[2] * 1000) if conns else 0},
          open(out, "w"))
PY

start_workload() {  # W name
  local w=$1 name=$2
  case $w in
    floor) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 1 --rate 0) ;;
    M4) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 4 --rate 50) ;;
    W1 | W1drop) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 64 --rate 50) ;;
    W2 | stream) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 1024 --rate 5243) ;;   # 2% of 262144 pages/s
    W3) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 1024 --rate 131072) ;; # 50%
    W5 | W5disk) args=(/opt/lxmig-tests/dirtier --port 7100 --mem 4096 --rate 20972) ;; # 2% of 1048576 pages/s
    W4) args=(/usr/bin/redis-server --port 6379 --save "" --appendonly no --protected-mode no
              --enable-debug-command yes --daemonize no) ;;
  esac
  "$LXMIG" --quiet --node n1 run --name "$name" --publish 7100 --publish 6379 --bind "$WORK:/opt/lxmig-tests" -- \
    "${args[@]}"
  local ip port=7100 kind=dirtier
  ip=$(bench_container_ip "$name")
  [[ $w == W4 ]] && { port=6379; kind=redis; }
  "$TB" client -- python3 - "$ip" "$port" "$kind" <<'PY'
import socket, sys, time
ip, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
req = b"*1\r\n$4\r\nPING\r\n" if kind == "redis" else b"GET\n"
for _ in range(600):
    try:
        s = socket.create_connection((ip, port), timeout=1); s.sendall(req)
        if s.recv(100): sys.exit(0)
    except OSError: pass
    time.sleep(0.1)
sys.exit(1)
PY
  if [[ $w == W4 ]]; then
    # ~500 MB of data: 480,000 keys of 1,000 bytes.
    "$TB" client -- redis-cli -h "$ip" -p 6379 DEBUG POPULATE 480000 key 1000 >/dev/null
  fi
  sleep 3  # the write rate settles, fresh memory is faulted in
}

run_one() {  # W mode run [probe: 1|0] [row label, default W]
  local w=$1 mode=$2 run=$3 probe=${4:-1} label=${5:-$1} name ip port=7100 kind=dirtier loadpid="" probepid=""
  name=${label,,}${mode:0:3}$run
  start_workload "$w" "$name"
  ip=$(bench_container_ip "$name")
  [[ $w == W4 ]] && { port=6379; kind=redis; }
  if [[ $w == W4 ]]; then
    "$TB" client -- redis-benchmark -h "$ip" -p 6379 -t set,get -n 100000000 -r 480000 -d 1000 -c 4 -q \
      >/dev/null 2>&1 &
    loadpid=$!
    sleep 2
  fi
  rm -f "$PROBE_STOP"
  if ((probe)); then
    "$TB" client -- python3 "$OUT/probe.py" "$ip" "$port" "$kind" "$PROBE_STOP" "$OUT/probe.json" &
    probepid=$!
    sleep 1
  else
    echo '{"max_gap_ms": -1, "answers": 0, "new_conns": 0, "new_conn_failed": 0, "new_conn_max_ms": -1}' \
      >"$OUT/probe.json"
  fi
  "$LXMIG" --json migrate "$name" --to n2 --mode "$mode" >"$OUT/mig.json" || true
  sleep 1
  [[ -z ${PROBE_STOP:-} ]] || touch "$PROBE_STOP"
  [[ -n $probepid ]] && { wait "$probepid" || true; }
  [[ -n $loadpid ]] && { kill "$loadpid" 2>/dev/null || true; wait "$loadpid" 2>/dev/null || true; }
  python3 - "$OUT/mig.json" "$OUT/probe.json" "$label" "$mode" "$run" >>"$OUT/results.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
ph = {x["name"]: x for x in r.get("phases", [])}
rounds = r.get("rounds", [])
r0 = rounds[0] if rounds else None
print(json.dumps({
  "w": sys.argv[3], "mode": sys.argv[4], "run": int(sys.argv[5]), "result": r["result"],
  "mode_used": r.get("mode", ""),
  "downtime_ms": r["downtime_ms"], "client_gap_ms": p["max_gap_ms"], "total_ms": r["total_ms"],
  "stream_broken": p.get("stream_broken", False), "new_conns": p["new_conns"],
  "new_conn_failed": p["new_conn_failed"], "new_conn_max_ms": p["new_conn_max_ms"],
  # When failed connections started, against the freeze (ms, wall clock).
  "new_conn_failed_from_freeze_ms": [t - ph["freeze"]["started_ms"] for t in p.get("new_conn_failed_at_ms", [])]
      if "freeze" in ph else [],
  # When the slowest new connection started, against the freeze.
  "new_conn_slowest_from_freeze_ms": p["new_conn_slowest_at_ms"] - ph["freeze"]["started_ms"]
      if "freeze" in ph and p.get("new_conn_slowest_at_ms") else None,
  "bytes": r["bytes"], "rounds": sum(1 for x in rounds if x["pages_sent"] > 0),
  "stop": rounds[-1]["stop"] if rounds else "",
  "dirty_per_round": [x["dirty_pages"] * 4096 for x in rounds],
  # The page stream: round 0's bytes over the time from its first chunk to
  # its last (the agent's send rate of round 0); and the whole round with
  # its scan, for comparison.
  "round0_rate_bps": r0["send_rate_bps"] if r0 else 0,
  "round0_with_scan_bps": (r0["bytes"] * 1000 / r0["duration_ms"]) if r0 and r0["duration_ms"] else 0,
  "frozen": {k: ph[k]["duration_ms"] for k in ("freeze", "final-scan", "dump", "rewrite", "transfer", "restore",
                                             "target-assemble", "target-lazy-start", "target-restore",
                                             "target-network") if k in ph},
  "restore_detail": ph.get("restore", {}).get("detail", ""),
  "dump_detail": ph.get("dump", {}).get("detail", ""),
  "rewrite_detail": ph.get("rewrite", {}).get("detail", ""),
  "freeze_detail": ph.get("freeze", {}).get("detail", ""),
  "pipe_max_size": int(open("/proc/sys/fs/pipe-max-size").read()),
}))
PY
  tail -1 "$OUT/results.jsonl" >&2
  "$LXMIG" --quiet rm "$name" || true
}

# Touched memory of W1/W2 (for the bytes-on-the-wire goal): the footprint.
# iperf3, one stream, n1 -> n2 over the fabric, the link the page stream uses.
iperf_run() {  # run
  "$TB" exec n2 -- iperf3 -s -1 -D -B 10.99.0.12 >/dev/null 2>&1 || true
  sleep 0.5
  "$TB" exec n1 -- iperf3 -c 10.99.0.12 -t 5 -J >"$OUT/iperf-$1.json" 2>/dev/null || echo '{}' >"$OUT/iperf-$1.json"
  sleep 1
}

# W1 with n1's agent holding the packets of the frozen window (the default)
# and with hold_queue off (they are dropped, as before).
run_dropping() {  # run
  "$TB" restart-agent n1 -- --hold-queue off >/dev/null
  run_one W1drop pre-copy "$1"
  "$TB" restart-agent n1 >/dev/null
}

# W5 with n2's images tmpfs too small for it: the images go to disk.
run_on_disk() {  # run
  "$TB" restart-agent n2 -- --images-tmpfs-size 1g >/dev/null
  run_one W5disk pre-copy "$1"
  "$TB" restart-agent n2 >/dev/null
}

for w in $ONLY; do
  for run in $(seq "$RUNS"); do
    if [[ $w == floor ]]; then run_one floor stop-and-copy "$run"; continue; fi
    if [[ $w == W5 ]]; then
      if ((run % 2)); then run_one W5 pre-copy "$run"; run_on_disk "$run"
      else run_on_disk "$run"; run_one W5 pre-copy "$run"; fi
      continue
    fi
    if [[ $w == hold ]]; then
      if ((run % 2)); then run_one W1 pre-copy "$run"; run_dropping "$run"
      else run_dropping "$run"; run_one W1 pre-copy "$run"; fi
      continue
    fi
    if [[ $w == stream ]]; then iperf_run "$run"; run_one stream pre-copy "$run" 0; continue; fi
    if [[ $w == auto ]]; then
      modes=(auto pre-copy stop-and-copy)
      for a in M4 W1 W2 W3 W4; do
        for k in 0 1 2; do run_one "$a" "${modes[(run + k) % 3]}" "$run" 1 "auto-$a"; done
      done
      continue
    fi
    if ((run % 2)); then run_one "$w" pre-copy "$run"; run_one "$w" stop-and-copy "$run"
    else run_one "$w" stop-and-copy "$run"; run_one "$w" pre-copy "$run"; fi
  done
done

python3 - "$OUT/results.jsonl" "$ROOT/docs/benchmarks-precopy.json" "$OUT"/iperf-*.json <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
iperfs = []
for f in sys.argv[3:]:
    try: iperfs.append(json.load(open(f))["end"]["sum_received"]["bits_per_second"] / 8)
    except Exception: pass
med = lambda xs: statistics.median(xs) if xs else float("nan")
iperf = med(iperfs) if iperfs else 0
out = {"iperf3_single_stream_Bps": iperf, "iperf3_runs_Bps": iperfs, "workloads": {}}
print(f"{'W':8} {'mode':14} {'downtime':>9} {'stream gap':>10} {'new conn':>8} {'failed':>6} {'total':>8} "
      f"{'wire MiB':>9} {'rounds':>6}  frozen window (median ms)")
AUTO_WS = ["auto-" + a for a in ("M4", "W1", "W2", "W3", "W4")]
for w in ["floor", "M4", "W1", "W1drop", "W2", "W3", "W4", "W5", "W5disk", "stream"] + AUTO_WS:
    for mode in ["pre-copy", "stop-and-copy", "auto"]:
        rs = [r for r in rows if r["w"] == w and r["mode"] == mode and r["result"] == "committed"]
        if not rs: continue
        fz = {k: med([r["frozen"].get(k, 0) for r in rs]) for k in rs[0]["frozen"]}
        m = {"downtime_ms": med([r["downtime_ms"] for r in rs]), "client_gap_ms": med([r["client_gap_ms"] for r in rs]),
             "new_conn_max_ms": med([r.get("new_conn_max_ms", -1) for r in rs]),
             "new_conn_failed": sum(r.get("new_conn_failed", 0) for r in rs),
             "client_gap_runs_ms": [r["client_gap_ms"] for r in rs],
             "new_conn_max_runs_ms": [r.get("new_conn_max_ms", -1) for r in rs],
             "downtime_runs_ms": [r["downtime_ms"] for r in rs],
             "failed_runs": sum(1 for r in rows if r["w"] == w and r["mode"] == mode and r["result"] != "committed"),
             "total_ms": med([r["total_ms"] for r in rs]), "bytes": med([r["bytes"] for r in rs]),
             "rounds": med([r["rounds"] for r in rs]), "frozen_ms": fz, "runs": len(rs),
             "stops": [r["stop"] for r in rs], "dirty_per_round": rs[0]["dirty_per_round"],
             "round0_rate_Bps": med([r["round0_rate_bps"] for r in rs]),
             "round0_with_scan_Bps": med([r.get("round0_with_scan_bps", 0) for r in rs]),
             "modes_used": [r.get("mode_used", "") for r in rs]}
        out["workloads"].setdefault(w, {})[mode] = m
        print(f"{w:8} {mode:14} {m['downtime_ms']:>9.0f} {m['client_gap_ms']:>10.0f} {m['new_conn_max_ms']:>8.0f} "
              f"{m['new_conn_failed']:>6} {m['total_ms']:>8.0f} "
              f"{m['bytes']/2**20:>9.1f} {m['rounds']:>6.0f}  " + " ".join(f"{k}={v:.0f}" for k, v in fz.items()))
W = out["workloads"]
def ratio(w, a="pre-copy", b="stop-and-copy", key="downtime_ms"):
    try: return W[w][a][key] / W[w][b][key]
    except Exception: return float("nan")
print()
def show(w, goal):
    # Only for the workloads this invocation ran in both modes (--only).
    r = ratio(w)
    if r == r: print(f"{w} downtime pre-copy / stop-and-copy: {r:.2f}  (goal <= {goal})")
show("W2", 0.25)
try:
    w1 = W['W1']['pre-copy']['downtime_ms'] / W['floor']['stop-and-copy']['downtime_ms']
    print(f"W1 downtime pre-copy / floor: {w1:.2f}  (goal <= 1.3)")
except Exception: pass
show("W1", 1.0)
for w, label in (("W1", "held"), ("W1drop", "dropped")):
    try:
        m = W[w]["pre-copy"]
        print(f"W1, packets of the frozen window {label}: longest new connection {m['new_conn_max_ms']:.0f} ms, "
              f"stream gap {m['client_gap_ms']:.0f} ms, downtime {m['downtime_ms']:.0f} ms "
              f"(goal: both <= downtime + 100)")
    except Exception: pass
show("W3", 1.1)
for w, touched, goal in (("W1", 64 << 20, 1.3), ("W2", 1 << 30, 1.3), ("W5", 4 << 30, 1.1), ("W5disk", 4 << 30, 1.1)):
    try: print(f"{w} bytes on the wire / touched memory: {W[w]['pre-copy']['bytes'] / touched:.2f}  (goal <= {goal})")
    except Exception: pass
for w in ("W5", "W5disk"):
    try:
        m = W[w]["pre-copy"]
        print(f"{w} (4 GiB) pre-copy downtime {m['downtime_ms']:.0f} ms (runs: "
              + " ".join(str(x) for x in m["downtime_runs_ms"]) + f"; failed runs {m['failed_runs']})  (goal <= 400)")
    except Exception: pass
for w in ("stream", "W2", "W3", "W4"):
    if iperf and w in W and "pre-copy" in W[w]:
        m = W[w]["pre-copy"]
        label = "page stream (W2, no client probe)" if w == "stream" else f"{w} round 0 under the client probe"
        print(f"{label}: {m['round0_rate_Bps']/2**20:.0f} MiB/s vs iperf3 {iperf/2**20:.0f} MiB/s: "
              f"{m['round0_rate_Bps']/iperf:.2f}" + ("  (goal >= 0.70)" if w == "stream" else "") +
              f"; with the round's scan {m['round0_with_scan_Bps']/2**20:.0f} MiB/s")
# auto against the better mode: medians, and run by run (the same run's
# three migrations).
for w in AUTO_WS:
    if w not in W or "auto" not in W[w]: continue
    try:
        best = min(W[w]["pre-copy"]["downtime_ms"], W[w]["stop-and-copy"]["downtime_ms"])
        per = []
        for run in sorted({r["run"] for r in rows if r["w"] == w and r["mode"] == "auto"}):
            d = {r["mode"]: r["downtime_ms"] for r in rows
                 if r["w"] == w and r["run"] == run and r["result"] == "committed"}
            if len(d) == 3: per.append(d["auto"] / min(d["pre-copy"], d["stop-and-copy"]))
        W[w]["auto"]["ratio_to_better"] = W[w]["auto"]["downtime_ms"] / best
        W[w]["auto"]["ratio_to_better_runs"] = per
        print(f"{w} auto / better mode: {W[w]['auto']['downtime_ms'] / best:.2f} (runs: "
              + " ".join(f"{x:.2f}" for x in per) + f"; picked {' '.join(W[w]['auto']['modes_used'])})  (goal <= 1.1)")
    except Exception: pass
if iperfs:
    print("iperf3 runs (MiB/s): " + " ".join(f"{x/2**20:.0f}" for x in iperfs))
json.dump(out, open(sys.argv[2], "w"), indent=2)
PY
