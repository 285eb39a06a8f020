#!/usr/bin/env bash
# Benchmark (issue 3): one full IPC scan with 10,000 extra processes (5,000
# pairs over pipes and Unix socketpairs, plus shared-memory groups), lxmig
# vs. `ss -xp` + `lsof -n` over the same processes, in one run. Prints the
# table and writes docs/benchmarks-grouping.json.
# Usage (as root): scripts/bench_grouping.sh [--pairs 5000] [--shm-groups 50]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/build.sh" --quiet
"$BUILD/tests/bench/grouping_bench" --lxmig "$BUILD/cli/lxmig" --json "$@" >"$ROOT/docs/benchmarks-grouping.json"
