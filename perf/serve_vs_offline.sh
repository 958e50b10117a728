#!/usr/bin/env bash
# serve + dpep bench against offline on the same model, dataset and concurrency; prints both
# bench_serving blocks and the serve/offline output-throughput ratio (issue 5: within 10%).
# usage: perf/serve_vs_offline.sh [DPEP=build/dpep] [NP=2] [PROMPTS=32] [IN=64] [OUT=32] [CONC=16]
#        [PRESET=bench] [extra run flags, e.g. --matmul-dtype bf16]
# Concurrency C: bench keeps C requests in flight; offline runs C/NP sequences per rank
# (--max-batch-size), and serve gets the same per-rank batch limit.
set -euo pipefail
DPEP=${1:-build/dpep}; NP=${2:-2}; PROMPTS=${3:-32}; IN=${4:-64}; OUT=${5:-32}; CONC=${6:-16}; PRESET=${7:-bench}
shift $(( $# < 7 ? $# : 7 ))
EXTRA=("$@")
BATCH=$(( (CONC + NP - 1) / NP ))
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1)
SERVER=""
. "$(dirname "$0")/../tests/lib/serve.sh"
cleanup() {
  serve_stop "$SERVER" 3
  rm -rf "$W"
}
trap cleanup EXIT
DS=(--dataset random --num-prompts "$PROMPTS" --random-input-len "$IN" --random-output-len "$OUT"
    --random-range-ratio 1 --seed 1)
RUN=(--preset "$PRESET" --max-batch-size "$BATCH" --log-dir "$W/logs" "${EXTRA[@]}")
echo "== $NP ranks, preset $PRESET, $PROMPTS prompts of $IN in / $OUT out, concurrency $CONC ($BATCH per rank)"

echo "== offline"
"${MPIRUN[@]}" -np "$NP" "$DPEP" offline "${DS[@]}" "${RUN[@]}" --result-file "$W/offline.json" 2>/dev/null \
  | sed -n '/Serving Benchmark Result/,$p'

echo "== serve + dpep bench"
serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np "$NP" "$DPEP" serve "${RUN[@]}" --port 0 ||
  { SERVER=$SERVE_PID; echo "serve did not start"; exit 1; }
SERVER=$SERVE_PID PORT=$SERVE_PORT
"$DPEP" bench --base-url "http://127.0.0.1:$PORT" "${DS[@]}" --request-rate inf --max-concurrency "$CONC" \
  --result-file "$W/serve.json" 2>/dev/null
python3 - "$W/offline.json" "$W/serve.json" <<'PY'
import json, sys
o, s = (json.load(open(p)) for p in sys.argv[1:3])
r = s["output_throughput"] / o["output_throughput"]
print(f"== output tok/s: serve {s['output_throughput']:.1f} / offline {o['output_throughput']:.1f} = {r:.3f}")
print(f"== serve TTFT ms mean/median/p99 {s['mean_ttft_ms']:.1f}/{s['median_ttft_ms']:.1f}/{s['p99_ttft_ms']:.1f}, "
      f"ITL ms mean/median/p99 {s['mean_itl_ms']:.2f}/{s['median_itl_ms']:.2f}/{s['p99_itl_ms']:.2f}")
PY
