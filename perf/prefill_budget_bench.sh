#!/usr/bin/env bash
# Decode under arriving prefills: dpep serve + dpep bench (random prompts, request rate inf,
# concurrency C) with --prefill-step-factor 0 (budget off: a step prefills up to
# --max-prefill-tokens) and with each factor F given, alternated for R rounds in one run. Prints
# per run the output throughput and the ITL median / p99, then per factor (median over rounds)
# p99/median ITL (goal <= 3) and output throughput against factor 0 (goal >= 0.95).
# RANGE=r (default 1) draws input and output lengths from [r x IN, IN] and [r x OUT, OUT]: below
# 1 the requests finish at different steps, so prefills land among decoding sequences.
# usage: perf/prefill_budget_bench.sh [DPEP=build/dpep] [NP=2] [PROMPTS=128] [IN=128] [OUT=64]
#        [CONC=32] [PRESET=bench] [FACTORS="2"] [R=2] [extra serve flags, e.g. --matmul-dtype bf16]
set -euo pipefail
DPEP=${1:-build/dpep}; NP=${2:-2}; PROMPTS=${3:-128}; IN=${4:-128}; OUT=${5:-64}; CONC=${6:-32}
PRESET=${7:-bench}; FACTORS=${8:-2}; R=${9:-2}
shift $(($# < 9 ? $# : 9))
EXTRA=("$@")
BATCH=$(((CONC + NP - 1) / NP))
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1)
. "$(dirname "$0")/../tests/lib/serve.sh"
SERVER=""
trap 'serve_stop "$SERVER" 10; rm -rf "$W"' EXIT
DS=(--dataset random --num-prompts "$PROMPTS" --random-input-len "$IN" --random-output-len "$OUT"
    --random-range-ratio "${RANGE:-1}" --seed 1)
echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores, $(date -u)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "== $NP ranks, preset $PRESET ${EXTRA[*]}, $PROMPTS prompts of $IN in / $OUT out," \
     "concurrency $CONC ($BATCH per rank), range ratio ${RANGE:-1}, factors 0 $FACTORS, $R rounds"
for r in $(seq 1 "$R"); do
  for f in 0 $FACTORS; do
    SERVE_READY_TIMEOUT=300 serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np "$NP" "$DPEP" \
      serve --preset "$PRESET" --max-batch-size "$BATCH" --log-dir "$W/logs" --port 0 \
      --prefill-step-factor "$f" "${EXTRA[@]}" || exit 1
    SERVER=$SERVE_PID
    "$DPEP" bench --base-url "http://127.0.0.1:$SERVE_PORT" "${DS[@]}" --request-rate inf \
      --max-concurrency "$CONC" --result-file "$W/f$f-r$r.json" >/dev/null 2>&1
    serve_stop "$SERVER" 10
    SERVER=""
    python3 - "$W/f$f-r$r.json" "$f" "$r" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"   factor {sys.argv[2]:>4} round {sys.argv[3]}: completed {j['completed']}, output "
      f"{j['output_throughput']:.2f} tok/s, ITL median {j['median_itl_ms']:.1f} ms, p99 "
      f"{j['p99_itl_ms']:.1f} ms (p99/median {j['p99_itl_ms'] / j['median_itl_ms']:.2f}), TTFT median "
      f"{j['median_ttft_ms']:.0f} ms")
PY
  done
done
python3 - "$W" "$R" 0 $FACTORS <<'PY'
import json, statistics, sys
w, R, factors = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def med(f, key):
    return statistics.median(json.load(open(f"{w}/f{f}-r{r}.json"))[key] for r in range(1, R + 1))
def ratio(f):
    return statistics.median(
        (lambda j: j["p99_itl_ms"] / j["median_itl_ms"])(json.load(open(f"{w}/f{f}-r{r}.json")))
        for r in range(1, R + 1))
base = med("0", "output_throughput")
for f in factors:
    tp = med(f, "output_throughput")
    print(f"== factor {f:>4}: p99/median ITL {ratio(f):.2f} (goal <= 3), output {tp:.2f} tok/s = "
          f"{tp / base:.3f} of factor 0 (goal >= 0.95)  [medians over {R} rounds]")
PY
