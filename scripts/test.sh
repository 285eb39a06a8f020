#!/usr/bin/env bash
# The whole test suite, as CI runs it: sets up what is missing, builds,
# checks the layout (scripts/format.sh --check), runs every test through
# ctest (unit tests, then integration tests on real namespaces, LXC and
# CRIU), then the fuzz targets (tests/fuzz): each replays its seeds and kept
# crashers and fuzzes for a few seconds (LXMIG_FUZZ_SECONDS, default 5).
# With ctest arguments (e.g. -R NAME) only ctest runs.
# Usage (as root): scripts/test.sh [ctest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
"$ROOT/scripts/setup.sh" --quiet
"$ROOT/scripts/build.sh" --quiet
export PATH=/opt/lxmig/bin:$PATH
(($#)) || "$ROOT/scripts/format.sh" --check
(cd "$BUILD" && ctest --output-on-failure --timeout 1500 "$@")
(($#)) || "$ROOT/scripts/fuzz.sh" --seconds "${LXMIG_FUZZ_SECONDS:-5}"
