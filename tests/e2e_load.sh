#!/usr/bin/env bash
# A lighter perf/load_test.sh: 4 rounds of 1000 streamed requests at concurrency 128 against
# `dpep serve` on 2 ranks (tiny model): nothing lost, every request gets all its tokens, RSS
# flat after two warm-up rounds, no error lines, clean exit. About 15 s. Two rounds, because
# one did not always bring the ranks to their plateau: on a loaded CI machine rank 0 grew 33 MB
# after round 1 (68.7 -> 101.9 MB, against 24 MB of slack), and a quiet local run of the
# 188e602 binary grew 19.8 MB; the plateau itself was 80-107 MB in every run.
# Args: $1 dpep binary, $2 tests/data (unused).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if WARMUP=2 bash "$HERE/../perf/load_test.sh" "$1" 1000 128 64 32 4; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"; exit 1
fi
