#!/usr/bin/env bash
# clang-format (Debian's, installed by scripts/setup.sh) over every C++ file of the project.
# scripts/format.sh        rewrites the files in place
# scripts/format.sh --check exits 1 and names the files clang-format would change
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h' 2>/dev/null || find . -name '*.cpp' -o -name '*.h')
if [[ "${1:-}" == "--check" ]]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    printf 'clang-format would change: %s\n' "${bad[@]}"
    echo "run scripts/format.sh to fix"
    exit 1
  fi
  echo "format-check: ${#files[@]} files clean"
else
  clang-format -i "${files[@]}"
fi
