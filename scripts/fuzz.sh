#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake preset `fuzz`: clang, ASan, UBSan, into
# build-fuzz/) and fuzzes each for N seconds, one after the other, on a
# working corpus in build-fuzz/fuzz-out/<target>/corpus that starts as a copy
# of tests/fuzz/corpus/<target>/ plus tests/fuzz/regressions/<target>/ and
# keeps what earlier runs found. Exits non-zero when a target crashes, with
# one line per crash naming the target and the input that crashed it; keep
# that input in tests/fuzz/regressions/<target>/ once the bug is fixed.
#
# Usage: scripts/fuzz.sh [--seconds N] [--fresh] [TARGET...]
#   --seconds N  fuzzing time per target (default 60)
#   --fresh      start from the seeds again (forget earlier runs' corpus)
#   TARGET       a name from tests/fuzz/<name>_fuzz.cc, e.g. pagemap or
#                proc_limits (default: all of them)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ=$ROOT/tests/fuzz
BUILD=$ROOT/build-fuzz
OUT=$BUILD/fuzz-out
SECS=60
FRESH=0
targets=()

die() { echo "fuzz: $*" >&2; exit 2; }
say() { echo "fuzz: $*" >&2; }

while (($#)); do
  case $1 in
    --seconds) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--seconds needs a whole number"; SECS=$2; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) targets+=("$1"); shift ;;
  esac
done

all=()
for f in "$FUZZ"/*_fuzz.cc; do all+=("$(basename "$f" _fuzz.cc)"); done
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ -f $FUZZ/${t}_fuzz.cc ]] || die "no target \`$t\` (have: ${all[*]})"
done

"$ROOT/scripts/setup.sh" --quiet
cd "$ROOT"
mkdir -p "$OUT"
cmake --preset fuzz >"$OUT/configure.log" 2>&1 || { cat "$OUT/configure.log" >&2; die "configure failed"; }
nice cmake --build --preset fuzz >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log" >&2; die "build failed"; }

failed=()
for t in "${targets[@]}"; do
  dir=$OUT/$t
  ((FRESH)) && rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  rm -f "$dir/artifacts"/*
  for src in "$FUZZ/corpus/$t" "$FUZZ/regressions/$t"; do
    [[ -d $src ]] && cp -n "$src"/* "$dir/corpus/" 2>/dev/null || true
  done
  args=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$dir/artifacts/")
  [[ -f $FUZZ/dict/$t.dict ]] && args+=(-dict="$FUZZ/dict/$t.dict")
  say "$t: ${SECS}s on $(find "$dir/corpus" -type f | wc -l) inputs"
  rc=0
  nice "$BUILD/tests/fuzz/fuzz_$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  if ((rc != 0)); then
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/log" | tail -1)
    [[ -n $crash ]] || crash=$(ls -t "$dir/artifacts"/* 2>/dev/null | head -1 || true)
    grep -E "fuzz invariant failed|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|SUMMARY" \
      "$dir/log" | head -5 >&2 || true
    echo "fuzz: FAIL $t: crash input ${crash:-(none written, exit $rc)} (log: $dir/log)" >&2
    failed+=("$t")
  else
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' || echo '?')
    say "$t: ok ($runs runs," \
        "corpus $(find "$dir/corpus" -type f | wc -l))"
  fi
done

((${#failed[@]} == 0)) || exit 1
say "all ${#targets[@]} targets ran ${SECS}s without a crash"
