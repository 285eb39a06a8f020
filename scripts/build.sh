#!/usr/bin/env bash
# Configures and builds lxmig into ./build (incremental when already built).
# Usage: scripts/build.sh [--quiet]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if [[ ${1:-} == --quiet ]]; then
  cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log" >&2; exit 1; }
else
  cmake --build "$BUILD" -j"$(nproc)"
fi
