#!/usr/bin/env bash
# Prefix caching and cache-aware routing on SGLang's generated-shared-prefix workload, through
# dpep serve + dpep bench, three servers back to back in one run (issue 16, item 4):
#   A: --disable-prefix-caching, --strategy least_tokens
#   B: prefix caching,           --strategy least_tokens
#   C: prefix caching,           --strategy cache_aware
# Prints each run's key lines and the ratios: mean TTFT B/A (goal <= 0.4) and B/C, least_tokens
# over cache_aware with caching on (goal >= 1.3).
# usage: perf/shared_prefix_bench.sh [DPEP=build/dpep] [NP=2] [PRESET=bench] [NGROUPS=8]
#        [PER_GROUP=8] [SYS=1024] [Q=64] [OUT=16] [CONC=16] [extra run flags, e.g. --matmul-dtype bf16]
set -euo pipefail
DPEP=${1:-build/dpep}; NP=${2:-2}; PRESET=${3:-bench}; NGROUPS=${4:-8}; PER_GROUP=${5:-8}
SYS=${6:-1024}; Q=${7:-64}; OUT=${8:-16}; CONC=${9:-16}
shift $(( $# < 9 ? $# : 9 ))
EXTRA=("$@")
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1)
SERVER=""
. "$(dirname "$0")/../tests/lib/serve.sh"
stop_server() {
  serve_stop "$SERVER" 10
  SERVER=""
}
trap 'stop_server; rm -rf "$W"' EXIT
DS=(--dataset generated-shared-prefix --gsp-num-groups "$NGROUPS" --gsp-prompts-per-group "$PER_GROUP"
    --gsp-system-prompt-len "$SYS" --gsp-question-len "$Q" --gsp-output-len "$OUT" --seed 1)
echo "== $NP ranks, preset $PRESET ${EXTRA[*]}: $NGROUPS groups x $PER_GROUP requests, system prompt $SYS," \
     "question $Q, output $OUT, concurrency $CONC"

run() {  # name, serve flags...
  local name=$1; shift
  SERVE_READY_TIMEOUT=300 serve_start "$W/$name.out" "$W/$name.err" "${MPIRUN[@]}" -np "$NP" "$DPEP" \
    serve --preset "$PRESET" --log-dir "$W/logs_$name" --port 0 "${EXTRA[@]}" "$@" ||
    { SERVER=$SERVE_PID; echo "serve ($name) did not start"; exit 1; }
  SERVER=$SERVE_PID
  local port=$SERVE_PORT
  "$DPEP" bench --base-url "http://127.0.0.1:$port" "${DS[@]}" --request-rate inf \
    --max-concurrency "$CONC" --result-file "$W/$name.json" >"$W/$name.bench" 2>/dev/null
  curl -s "http://127.0.0.1:$port/metrics" | grep -E '^dpep:rank_prefix_cache_(hits|queries)_total' \
    > "$W/$name.metrics" || true
  stop_server
  echo "== $name (serve $*)"
  grep -E "Successful|duration|Mean TTFT|Median TTFT|P99 TTFT|Output token throughput|Mean ITL" "$W/$name.bench"
  sed 's/^/   /' "$W/$name.metrics"
}
run nocache --disable-prefix-caching --strategy least_tokens
run cache_least_tokens --strategy least_tokens
run cache_aware --strategy cache_aware
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
a, b, c = (json.load(open(f"{w}/{n}.json")) for n in ("nocache", "cache_least_tokens", "cache_aware"))
for n, j in (("no cache, least_tokens", a), ("cache, least_tokens", b), ("cache, cache_aware", c)):
    print(f"== {n:24s} mean TTFT {j['mean_ttft_ms']:9.1f} ms, median {j['median_ttft_ms']:9.1f} ms, "
          f"output {j['output_throughput']:.2f} tok/s, completed {j['completed']}")
print(f"== mean TTFT cache / no cache (both least_tokens): {b['mean_ttft_ms'] / a['mean_ttft_ms']:.3f} (goal <= 0.4)")
print(f"== mean TTFT cache_aware / no cache:               {c['mean_ttft_ms'] / a['mean_ttft_ms']:.3f}")
print(f"== mean TTFT least_tokens / cache_aware (cached):  {b['mean_ttft_ms'] / c['mean_ttft_ms']:.3f} (goal >= 1.3)")
PY
