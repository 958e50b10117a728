#!/usr/bin/env bash
# DeepSeek-V3 width on one 24 GB host: a 3-layer, 64-expert FP8 model (init-model --preset v3,
# about 10.4 GB, the routed experts dominate) run as shipped, FP8 kept in memory:
#   1. `dpep plan` for -np 2 (what each rank will hold; --max-prefill-tokens auto);
#   2. greedy outputs with --matmul-dtype fp32 at np 1 and np 2 must be identical;
#   3. generate, offline and serve at np 2 with --kv-cache-tokens 4096 (default matmul mode):
#      each rank's peak RSS (VmHWM) against the FP8 share it holds (goal: at most 2 GB above).
# Usage: [FP32=0] perf/v3_width_proof.sh [DPEP=build/dpep]    (work dir: $DPEP_BENCH_DIR or /tmp/dpep-v3w)
# Needs about 20 GB of memory and 11 GB of disk; prints the figures, exits 1 if a goal is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
DPEP=${1:-build/dpep}
W=${DPEP_BENCH_DIR:-/tmp/dpep-v3w}
mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
. tests/lib/serve.sh
M=${V3W_MODEL:-$W/v3w64-fp8.h5}
V3=(--preset v3 --set num_hidden_layers=3 --set first_k_dense_replace=1 --set n_routed_experts=64
    --set num_nextn_predict_layers=0)
echo "machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
     "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(date -u)," \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[[ -f $M ]] || "$DPEP" init-model "${V3[@]}" --dtype fp8 --out "$M" --quiet
echo "model: $M, $(du -b "$M" | cut -f1) bytes"
fail=0
RUN=(--model "$M" --kv-cache-tokens 4096)

# 1. The plan.
"$DPEP" plan --model "$M" --ranks 2 --ranks-per-host 2 --kv-cache-tokens 4096 | sed 's/^/  plan: /'

# Prompts: 3 requests of random ids, greedy.
python3 - "$W/prompts.jsonl" <<'PY'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i, n in enumerate([9, 33, 100]):
        f.write(json.dumps({"id": f"p{i}", "input_ids": [random.randrange(3, 120000) for _ in range(n)],
                            "max_tokens": 8, "ignore_eos": True}) + "\n")
PY

# Peak RSS of each rank of a finished run: /usr/bin/time around each rank.
timed() {  # tag np cmd...
  local tag=$1 np=$2
  shift 2
  rm -f "$W"/rss-"$tag"-*.txt
  "${MPIRUN[@]}" -np "$np" sh -c "exec /usr/bin/time -f %M -o $W/rss-$tag-\$OMPI_COMM_WORLD_RANK.txt $*"
}
# The FP8 share a rank holds (weights resident on the rank, from its log) and its peak RSS.
report() {  # tag logdir rss-kB-per-rank...
  local tag=$1 logs=$2 r=0
  shift 2
  for kb in "$@"; do
    local held
    held=$(sed -n 's/.* \([0-9.]*\) MB of weights on this rank.*/\1/p' "$(printf "%s/rank-%04d.log" "$logs" $r)" | head -1)
    python3 - "$tag" "$r" "$kb" "$held" <<'PY' || fail=1
import sys
tag, r, kb, held = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rss, share = kb * 1024 / 1e9, held / 1e3
ok = rss <= share + 2.0
print(f"  {tag} rank {r}: peak RSS {rss:.2f} GB, weights held {share:.2f} GB, "
      f"+{rss - share:.2f} GB (goal <= +2 GB: {'ok' if ok else 'MISSED'})")
sys.exit(0 if ok else 1)
PY
    r=$((r + 1))
  done
}

# 2. Exact mode, np 1 and np 2 (FP32=0 skips it).
for np in $( [[ ${FP32:-1} == 1 ]] && echo 1 2); do
  t0=$SECONDS
  timed fp32-np$np $np "$DPEP" generate "${RUN[@]}" --matmul-dtype fp32 --input-file "$W/prompts.jsonl" \
    --output-file "$W/fp32-np$np.jsonl" --log-dir "$W/logs-fp32-np$np" >/dev/null 2>"$W/fp32-np$np.err" ||
    { echo "fp32 np $np failed:"; tail -5 "$W/fp32-np$np.err"; exit 1; }
  echo "fp32 generate np $np: $((SECONDS - t0)) s"
done
if [[ ${FP32:-1} != 1 ]]; then echo "(FP32=0: np 1 against np 2 in fp32 not run)"
elif python3 - "$W/fp32-np1.jsonl" "$W/fp32-np2.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
ta = [r["output_ids"] for r in a]
tb = [r["output_ids"] for r in b]
print("  np 1:", ta)
print("  np 2:", tb)
sys.exit(0 if ta == tb and len(ta) == 3 else 1)
PY
then echo "ok fp32 greedy outputs identical at np 1 and np 2"; else echo "MISSED: np 1 and np 2 differ"; fail=1; fi

# 3. np 2, default matmul mode: generate, offline, serve.
t0=$SECONDS
timed gen 2 "$DPEP" generate "${RUN[@]}" --input-file "$W/prompts.jsonl" --output-file "$W/gen.jsonl" \
  --log-dir "$W/logs-gen" >/dev/null 2>"$W/gen.err" || { tail -5 "$W/gen.err"; exit 1; }
echo "generate np 2: $((SECONDS - t0)) s, $(wc -l <"$W/gen.jsonl") results"
report generate "$W/logs-gen" "$(cat "$W/rss-gen-0.txt")" "$(cat "$W/rss-gen-1.txt")"

t0=$SECONDS
timed off 2 "$DPEP" offline "${RUN[@]}" --num-prompts 16 --random-input-len 512 --random-output-len 16 \
  --random-range-ratio 1 --log-dir "$W/logs-off" --result-file "$W/off.json" >/dev/null 2>"$W/off.err" ||
  { tail -5 "$W/off.err"; exit 1; }
echo "offline np 2: $((SECONDS - t0)) s, $(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['completed'], 'of 16 completed,', round(j['output_throughput'], 2), 'output tok/s')" "$W/off.json")"
report offline "$W/logs-off" "$(cat "$W/rss-off-0.txt")" "$(cat "$W/rss-off-1.txt")"

t0=$SECONDS
serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np 2 "$DPEP" serve "${RUN[@]}" --port 0 \
  --log-dir "$W/logs-serve" --tokenizer preset || exit 1
echo "serve np 2: ready in $((SECONDS - t0)) s on port $SERVE_PORT"
ok=0
for i in 1 2 3; do
  curl -sf "http://127.0.0.1:$SERVE_PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": [5, 77, 901, $i], \"max_tokens\": 8}" >"$W/serve-$i.json" && ok=$((ok + 1))
done
echo "serve: $ok of 3 completions answered"
[[ $ok == 3 ]] || fail=1
rss=()
for r in 0 1; do
  for p in $(pgrep -f "dpep serve"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$r"; then
      rss+=("$(awk '/VmHWM/ {print $2}' "/proc/$p/status")")
    fi
  done
done
serve_stop "$SERVE_PID" 10
report serve "$W/logs-serve" "${rss[@]}"
[[ $fail == 0 ]] && echo "all goals met" || echo "some goal missed"
exit $fail
