#!/usr/bin/env bash
# Decode batch scaling against a baseline commit (issue 13): offline at -np NP on the bench preset
# (bf16 weights, --matmul-dtype bf16), N sequences per rank for N = 32 and 256 (2N prompts of
# 32 in / 128 out, at most N running per rank), this tree and the baseline (default e862868,
# built with ccache in a temporary git worktree, run with OPENBLAS_CORETYPE=SKYLAKEX) alternated
# for R rounds in one run. Prints every round, the best of each, and the two ratios the issue
# asks for: this tree's 256 over its 32 (goal >= 1.5x) and this tree's 32 over the baseline's 32
# (goal >= 2x), with the bf16 peak (oneDNN 2048^3 bf16, all threads) measured in the same run.
# Usage: perf/decode_scaling_bench.sh [NP=2] [R=2] [BASELINE=e862868]
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${1:-2}; R=${2:-2}; BASE=${3:-e862868}
W=${DPEP_BENCH_DIR:-/tmp/dpep-one-seq}; mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source perf/lib/baseline.sh
baseline_setup "$W" "$BASE" bench_matmul
bf16_peak "$W" scaling
run() {  # name, sequences per rank, binary, extra env...
  local name=$1 n=$2 bin=$3; shift 3
  rm -f "$W/scaling-$name.json"
  env "$@" mpirun --oversubscribe --bind-to none -np "$NP" "$bin" offline --model "$W/bench.h5" \
    --num-prompts $((NP * n)) --random-input-len 32 --random-output-len 128 --random-range-ratio 1 \
    --matmul-dtype bf16 --max-batch-size "$n" --kv-cache-tokens 65536 \
    --log-dir "$W/logs-scaling-$name" --result-file "$W/scaling-$name.json" >"$W/scaling-$name.txt" 2>&1 ||
    echo "run $name failed: see $W/scaling-$name.txt"
}
for r in $(seq 1 "$R"); do
  for n in 32 256; do
    run "base-$n-$r" "$n" "$BASE_DPEP" OPENBLAS_CORETYPE=SKYLAKEX
    run "new-$n-$r" "$n" build/dpep
  done
done
python3 - "$W" "$R" "$BASE" "$PEAK" <<'PY'
import json, os, sys
w, R, base, peak = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
best = {}
for kind in ("base", "new"):
    for n in (32, 256):
        for r in range(1, R + 1):
            f = f"{w}/scaling-{kind}-{n}-{r}.json"
            if not os.path.exists(f):
                continue
            j = json.load(open(f))
            out, gf = j["output_throughput"], j["model_flops"] / j["duration"] / 1e9
            print(f"round {r} {kind:4} {n:3} per rank: output {out:7.1f} tok/s, median TPOT "
                  f"{j['median_tpot_ms']:6.1f} ms, model matmul {gf:6.1f} GFLOP/s "
                  f"({100 * gf / peak:.1f}% of the bf16 peak {peak:.1f})")
            best[(kind, n)] = max(best.get((kind, n), 0), out)
b32, n32, n256 = best[("base", 32)], best[("new", 32)], best[("new", 256)]
print(f"\nbest of {R}: baseline {base} 32/256 per rank {b32:.1f} / {best[('base', 256)]:.1f}; "
      f"this tree {n32:.1f} / {n256:.1f} output tok/s")
print(f"this tree, 256 over 32 sequences per rank: {n256 / n32:.2f}x (goal >= 1.5x)")
print(f"32 sequences per rank, this tree over the baseline: {n32 / b32:.2f}x (goal >= 2x)")
PY
