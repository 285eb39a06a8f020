#!/usr/bin/env bash
# Formats the C++ tree with the root .clang-format (the house style, 120
# columns). With --check, changes nothing and exits 1 when a file would
# change or any tracked source line (C++, proto, CMake, shell) exceeds 120
# columns.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: format.sh [--check]" >&2; exit 2 ;;
esac
command -v clang-format >/dev/null || { echo "format: clang-format is not installed (scripts/setup.sh)" >&2; exit 1; }

mapfile -t cxx < <(git ls-files '*.cc' '*.h')
if ((check)); then
  clang-format --dry-run -Werror "${cxx[@]}" 2>/tmp/lxmig-format.$$ || {
    grep -m 20 'error:' /tmp/lxmig-format.$$ >&2 || true
    rm -f /tmp/lxmig-format.$$
    echo "format: the files above differ from .clang-format; run scripts/format.sh" >&2
    exit 1
  }
  rm -f /tmp/lxmig-format.$$
  mapfile -t all < <(git ls-files '*.cc' '*.h' '*.proto' '*.sh' '*CMakeLists.txt' '*.cmake' .ci/run)
  long=$(awk 'length > 120 {print FILENAME ":" FNR ": " length " columns"}' "${all[@]}")
  if [[ -n $long ]]; then
    echo "$long" >&2
    echo "format: lines over 120 columns" >&2
    exit 1
  fi
  echo "format: ok (${#cxx[@]} C++ files, ${#all[@]} files within 120 columns)"
else
  clang-format -i "${cxx[@]}"
fi
