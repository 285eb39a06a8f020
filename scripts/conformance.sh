#!/usr/bin/env bash
# The conformance suite (tests/conformance/, docs/conformance.md): each
# program sets kernel state up in a container on n1, is migrated to n2
# (or not: mode "none"; or saved to a file and restored from it on n2:
# mode "checkpoint"), then told to check it (SIGTERM) and reports PASS or
# FAIL. A migration may also be refused; that is fine when its reason
# names the feature, never a failure after a committed migration.
#
#   scripts/conformance.sh [--mode "none pre-copy stop-and-copy checkpoint"|all] [--only REGEX] [--json]
#
# Uses its own test bed (prefix lxconf), brought up and taken down here.
# Prints one row per program and mode; exit status 1 when any program
# failed or a migration failed without a refusal.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
BIN=$BUILD/tests/conformance/bin
LXMIG=$BUILD/cli/lxmig
PREFIX=lxconf
MODES="none pre-copy stop-and-copy checkpoint"
ONLY=.
JSON=0

die() { echo "conformance: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --mode) [[ $2 == all ]] || MODES=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --json) JSON=1; shift ;;
    *) die "unknown argument \`$1\` (--mode M | --only REGEX | --json)" ;;
  esac
done
for m in $MODES; do [[ $m =~ ^(none|pre-copy|stop-and-copy|checkpoint)$ ]] || die "unknown mode \`$m\`"; done
[[ -x $LXMIG && -d $BIN ]] || die "build first (scripts/build.sh): no $LXMIG or $BIN"
[[ $(id -u) == 0 ]] || die "needs root (LXC, CRIU, namespaces)"

RESULTS=$(mktemp -d /tmp/lxmig-conformance-XXXXXX)
chmod 777 "$RESULTS"
CKPT=$(mktemp -d /tmp/lxmig-conformance-ckpt-XXXXXX)  # not seen by the containers
export LXMIG_TESTBED_PREFIX=$PREFIX
L=("$LXMIG" --cluster "/run/$PREFIX-testbed/cluster.toml")
cleanup() {
  "${L[@]}" testbed down >/dev/null 2>&1 || true
  rm -rf "$RESULTS" "$CKPT"
}
trap cleanup EXIT
"${L[@]}" testbed up --nodes 2 >/dev/null

# waits until `cmd` succeeds, at most $1 tenths of a second
await() {
  local n=$1 i
  shift
  for ((i = 0; i < n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

rows=()
bad=0
for prog in "$BIN"/*; do
  name=$(basename "$prog")
  [[ $name =~ $ONLY ]] || continue
  row="$name"
  for mode in $MODES; do
    c="cf-${name//_/-}"
    c=${c:0:30}
    out="$name-$mode.out"
    rm -f "$RESULTS/$out"
    cell=""
    if ! "${L[@]}" --node n1 run --name "$c" --bind "$BIN:/opt/conf" --bind "$RESULTS:/results:rw" \
      -e "CONF_OUT=/results/$out" -- "/opt/conf/$name" >/dev/null 2>"$RESULTS/run.err"; then
      cell="ERROR(run: $(tail -1 "$RESULTS/run.err"))"
    elif ! await 100 "${L[@]}" exec "$c" -- test -e /tmp/conf.ready; then
      cell="ERROR(not ready: $(cat "$RESULTS/$out" 2>/dev/null || echo no verdict))"
    else
      verdict=""
      move=(migrate "$c" --to n2 --mode "$mode")
      [[ $mode == checkpoint ]] && move=(checkpoint "$c" --export "$CKPT/$c.ckpt")
      if [[ $mode != none ]]; then
        if ! "${L[@]}" "${move[@]}" >/dev/null 2>"$RESULTS/mig.err"; then
          why=$(tail -1 "$RESULTS/mig.err")
          if [[ $why == *": refused: "* ]]; then
            verdict="REFUSED(${why#*: refused: })"
          else
            verdict="MIGRATION-FAILED($why)"
          fi
        elif [[ $mode == checkpoint ]] &&
          ! "${L[@]}" --node n2 restore --import "$CKPT/$c.ckpt" >/dev/null 2>"$RESULTS/mig.err"; then
          verdict="RESTORE-FAILED($(tail -1 "$RESULTS/mig.err"))"
        fi
        rm -f "$CKPT/$c.ckpt"
      fi
      if [[ -z $verdict ]]; then
        "${L[@]}" exec "$c" -- /bin/sh -c 'kill -TERM $(cat /tmp/conf.pid)' >/dev/null 2>&1 || true
        await 300 test -s "$RESULTS/$out" || true
        verdict=$(head -1 "$RESULTS/$out" 2>/dev/null || echo "FAIL: no verdict within 30 s")
      fi
      cell=$verdict
    fi
    "${L[@]}" rm "$c" >/dev/null 2>&1 || true
    [[ $cell == PASS || $cell == REFUSED* ]] || bad=1
    row+=$'\t'"$cell"
  done
  rows+=("$row")
done

if ((JSON)); then
  printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
modes = sys.argv[1].split()
out = []
for line in sys.stdin:
    f = line.rstrip("\n").split("\t")
    out.append({"program": f[0], **{m: v for m, v in zip(modes, f[1:])}})
print(json.dumps({"results": out}, indent=2))' "$MODES"
else
  header="PROGRAM"
  for m in $MODES; do header+=$'\t'"$m"; done
  # columns as wide as their widest cell
  { echo "$header"; printf '%s\n' "${rows[@]}"; } | awk -F'\t' '
    {
      for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
      n = NR; if (NF > nf) nf = NF
    }
    END {
      for (r = 1; r <= n; r++) {
        line = ""
        for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] + 2 "s", cell[r, i])
        sub(/ +$/, "", line); print line
      }
    }'
fi
exit $bad
