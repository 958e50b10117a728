#!/usr/bin/env bash
# A lighter perf/load_test.sh: 4 rounds of 1000 streamed requests at concurrency 128 against
# `dpep serve` on 2 ranks (tiny model): nothing lost, every request gets all its tokens, RSS
# flat after two warm-up rounds, no error lines, clean exit. About 15 s.
# A rank's RSS plateau is set by its largest step. With the automatic prefill cap (8192 tokens
# here) the largest step depends on how many prompts arrive together, so on a loaded CI machine
# the plateau came in round 3 (+24 MB on both ranks, 2026-11-27). At --max-prefill-tokens 512
# every round's first burst reaches the cap: the plateau (about 64 / 44 MB) comes in round 1
# and a leak stands out against the 24 MB of slack. Two warm-up rounds all the same.
# Args: $1 dpep binary, $2 tests/data (unused).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if MAX_PREFILL=512 WARMUP=2 bash "$HERE/../perf/load_test.sh" "$1" 1000 128 64 32 4; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"; exit 1
fi
