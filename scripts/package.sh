#!/usr/bin/env bash
# Builds the Debian package from the install rules (scripts/deploy/install.cmake)
# of an existing build: lxmig_VERSION_amd64.deb in OUTDIR (default build/package).
# Usage: scripts/package.sh [OUTDIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${LXMIG_BUILD_DIR:-$ROOT/build}
OUT=${1:-$BUILD/package}
[[ -f $BUILD/CPackConfig.cmake ]] || { echo "package: no configured build at $BUILD (scripts/build.sh)" >&2; exit 1; }
mkdir -p "$OUT"
(cd "$BUILD" && cpack -G DEB -B "$OUT" >/dev/null)
ls "$OUT"/lxmig_*.deb
