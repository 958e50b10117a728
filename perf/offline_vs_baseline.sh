#!/usr/bin/env bash
# Offline throughput against a baseline commit (issue 13): the bench preset (bf16 weights,
# --matmul-dtype bf16), P prompts of I in / O out at -np NP, this tree and the baseline (default
# e862868, built with ccache in a temporary git worktree, run with OPENBLAS_CORETYPE=SKYLAKEX so
# that its float32 paths get OpenBLAS's AVX-512 kernels), alternated for R rounds in one run.
# Prints every round, the best of each and the ratio, with the model matmul rate against the
# bf16 peak (oneDNN 2048^3 bf16, all threads) measured in the same run.
# Usage: perf/offline_vs_baseline.sh [NP=2] [P=256] [I=256] [O=256] [R=1] [BASELINE=e862868]
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${1:-2}; P=${2:-256}; I=${3:-256}; O=${4:-256}; R=${5:-1}; BASE=${6:-e862868}
W=${DPEP_BENCH_DIR:-/tmp/dpep-one-seq}; mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source perf/lib/baseline.sh
baseline_setup "$W" "$BASE" bench_matmul
bf16_peak "$W" offline
run() {  # name, binary, extra env...
  local name=$1 bin=$2; shift 2
  env "$@" mpirun --oversubscribe --bind-to none -np "$NP" "$bin" offline --model "$W/bench.h5" \
    --num-prompts "$P" --random-input-len "$I" --random-output-len "$O" --random-range-ratio 1 \
    --matmul-dtype bf16 --max-batch-size 256 --kv-cache-tokens $(( (P / NP + 8) * (I + O) )) \
    --log-dir "$W/logs-offline-$name" --result-file "$W/offline-$name.json" >"$W/offline-$name.txt" 2>&1
}
for r in $(seq 1 "$R"); do
  run "base-$r" "$BASE_DPEP" OPENBLAS_CORETYPE=SKYLAKEX
  run "new-$r" build/dpep
done
python3 - "$W" "$R" "$BASE" "$PEAK" <<'PY'
import json, sys
w, R, base, peak = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
best = {}
for kind in ("base", "new"):
    for r in range(1, R + 1):
        j = json.load(open(f"{w}/offline-{kind}-{r}.json"))
        out, gf = j["output_throughput"], j["model_flops"] / j["duration"] / 1e9
        print(f"round {r} {kind:4}: output {out:7.1f} tok/s, model matmul {gf:6.1f} GFLOP/s "
              f"({100 * gf / peak:.1f}% of the bf16 peak {peak:.1f})")
        if out > best.get(kind, (0, 0))[0]:
            best[kind] = (out, gf)
(bo, _), (no, ngf) = best["base"], best["new"]
print(f"\nbaseline {base}: {bo:.1f} output tok/s; this tree: {no:.1f} output tok/s (best of {R})")
print(f"ratio: {no / bo:.2f}x (goal >= 2x); model matmul {ngf:.1f} GFLOP/s = {100 * ngf / peak:.1f}% "
      f"of the bf16 peak (goal >= 12%)")
PY
