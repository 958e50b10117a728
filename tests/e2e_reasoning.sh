#!/usr/bin/env bash
# dpep serve --reasoning-parser deepseek-r1 end to end, two jobs under mpirun -np 2 each:
#   R: tiny model with vocab_size 129280 carrying the real DeepSeek-V3 tokenizer (init-model
#      --tokenizer): /tokenize and /detokenize against reference.json, 400s, chat without
#      </think> (all reasoning_content), stop strings across token boundaries (CJK tokens).
#   P: tiny model, vocab 512, --tokenizer preset (</think> = id 6), with a fixture message whose
#      greedy answer contains </think>: reasoning_content + </think> + content == the raw text of
#      /v1/completions on the /tokenize'd prompt, streamed reasoning before content, stop strings
#      in the reasoning and in the content.
# Checks in tests/e2e_reasoning_client.py. Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
. "$HERE/lib/serve.sh"
declare -A PID=() PORT=()
stop_server() {  # name: mpirun forwards SIGTERM to the ranks; what is left after 5 s is killed
  serve_stop "${PID[$1]:-}" 5
  PID[$1]=""
}
trap 'stop_server r; stop_server p; rm -rf "$W"' EXIT

launch() {  # name model extra-flags...: starts a server on a port the kernel picks, waits for it
  local name=$1 model=$2
  shift 2
  serve_start "$W/$name.out" "$W/$name.err" "${MPIRUN[@]}" -np 2 "$DPEP" serve --model "$model" \
    --port 0 --log-dir "$W/logs-$name" --kv-cache-tokens 4096 --max-batch-size 2 \
    --reasoning-parser deepseek-r1 "$@" || exit 1
  PID[$name]=$SERVE_PID
  PORT[$name]=$SERVE_PORT
}

t0=$SECONDS
"$DPEP" init-model --preset tiny --seed 1 --set vocab_size=129280 --tokenizer "$DATA/deepseek-v3-tokenizer" \
  --out "$W/r.h5" --quiet 2>/dev/null
"$DPEP" init-model --preset tiny --seed 1 --out "$W/p.h5" --quiet 2>/dev/null
R_ARGS=(r "$W/r.h5")
P_ARGS=(p "$W/p.h5" --tokenizer preset)
launch "${R_ARGS[@]}"
launch "${P_ARGS[@]}"
[ "${PORT[r]}" != "${PORT[p]}" ] || { echo "both servers on one port?"; exit 1; }
echo "servers up on ports ${PORT[r]} (real tokenizer) and ${PORT[p]} (preset) in $((SECONDS - t0)) s"
grep -q "tokenizer: yes" "$W/logs-r/rank-0000.log" || { echo "R has no tokenizer"; exit 1; }

rc=0
python3 "$HERE/e2e_reasoning_client.py" "${PORT[r]}" "${PORT[p]}" "$DATA" || rc=$?
[ "$rc" = 0 ] || { echo "--- r.err"; tail -20 "$W/r.err"; echo "--- p.err"; tail -20 "$W/p.err"; exit 1; }
