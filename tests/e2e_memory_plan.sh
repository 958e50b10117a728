#!/bin/bash
# The memory plan end to end: `dpep plan` for a file, a preset and a Hugging Face folder agree;
# a run whose ranks do not fit the host's memory (DPEP_MEMORY_AVAILABLE stands in for a small
# host) stops on every rank before reading any weight, with the numbers and a flag that would
# make it fit, and exits non-zero; the same run fits when the memory is there.
# $1 = dpep binary, $2 = tests/data.
set -euo pipefail
DPEP=$1
DATA=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MPIRUN=(mpirun --oversubscribe --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. plan of a model file = plan of the preset it was made from = plan of its HF export.
"$DPEP" init-model --preset tiny --seed 3 --dtype fp8 --out "$TMP/tiny-fp8.h5" --quiet
"$DPEP" init-model --preset tiny --seed 3 --dtype fp8 --hf-out "$TMP/hf" --quiet 2> /dev/null
common=(--ranks 2 --ranks-per-host 2 --kv-cache-tokens 1000 --threads 1 --matmul-dtype fp32 --json)
"$DPEP" plan --model "$TMP/tiny-fp8.h5" "${common[@]}" > "$TMP/file.json"
"$DPEP" plan --preset tiny --dtype fp8 "${common[@]}" > "$TMP/preset.json"
"$DPEP" plan --hf "$TMP/hf" "${common[@]}" > "$TMP/hf.json"
mkdir "$TMP/cfg-only" && cp "$TMP/hf/config.json" "$TMP/cfg-only/"
"$DPEP" plan --hf "$TMP/cfg-only" "${common[@]}" > "$TMP/cfg.json"
for k in weights_fp8 fp8_scales weights_bf16 weights_f32 kv_bytes activations peak; do
  a=$(json_field "$TMP/file.json" $k)
  for other in preset hf cfg; do
    b=$(json_field "$TMP/$other.json" $k)
    [ "$a" = "$b" ] || { echo "plan $k: file $a, $other $b"; exit 1; }
  done
done
[ "$(json_field "$TMP/file.json" weights_fp8)" -gt 0 ] || { echo "no fp8 weights counted"; exit 1; }
[ "$(json_field "$TMP/file.json" kv_bytes)" = $((1024 * 288)) ] || { echo "kv bytes"; exit 1; }
"$DPEP" plan --preset tiny --ranks 2 > "$TMP/human.txt"
grep -q "^peak .* per rank" "$TMP/human.txt" || { cat "$TMP/human.txt"; exit 1; }
# Bad input: clear errors.
for args in "--preset tiny --ranks 3" "--preset tiny" "--ranks 2" "--model $TMP/none.h5 --ranks 2" \
            "--preset tiny --model $TMP/tiny-fp8.h5 --ranks 2" "--preset nope --ranks 2"; do
  if "$DPEP" plan $args > /dev/null 2> "$TMP/err"; then echo "plan accepted: $args"; exit 1; fi
  grep -q "error" "$TMP/err" || { echo "no error for: $args"; cat "$TMP/err"; exit 1; }
done

# 2. Too little memory: every rank stops before loading, with the message; the job exits 1.
set +e
DPEP_MEMORY_AVAILABLE=1G timeout 120 "${MPIRUN[@]}" -np 2 -x DPEP_MEMORY_AVAILABLE "$DPEP" generate \
  --model "$TMP/tiny-fp8.h5" --prompt-ids 3,9 --kv-cache-tokens 2000000 --threads 1 \
  --log-dir "$TMP/logs" > "$TMP/out" 2> "$TMP/err"
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "exit code $rc (124 = hang)"; cat "$TMP/err"; exit 1; }
# The numbers once for the host (printed before the ranks agree to stop), a short line per rank.
[ "$(grep -c "^dpep: not enough memory on host .*: 2 ranks x .* needed, 1.07 GB available" "$TMP/err")" = 1 ] ||
  { echo "not one message with the numbers on stderr"; cat "$TMP/err"; exit 1; }
grep -q -- "--kv-cache-tokens [0-9]* (now 2000000)" "$TMP/err" || { cat "$TMP/err"; exit 1; }
grep -q "memory plan failed on rank [01]: not enough memory on host .* for its 2 rank(s)" "$TMP/err" ||
  { echo "no error line on stderr"; cat "$TMP/err"; exit 1; }
for r in 0 1; do
  log="$TMP/logs/rank-000$r.log"
  grep -q "not enough memory on host .*: 2 ranks x .* needed, 1.07 GB available" "$log" ||
    { echo "rank $r: no message"; cat "$log"; exit 1; }
  grep -q -- "--kv-cache-tokens [0-9]* (now 2000000)" "$log" || { echo "rank $r: no fix"; cat "$log"; exit 1; }
  if grep -q "weights on this rank, loaded" "$log"; then echo "rank $r loaded weights"; exit 1; fi
done
# The suggested cache size runs.
fix=$(grep -o -- "--kv-cache-tokens [0-9]*" "$TMP/logs/rank-0000.log" | head -1)
DPEP_MEMORY_AVAILABLE=1G timeout 120 "${MPIRUN[@]}" -np 2 -x DPEP_MEMORY_AVAILABLE "$DPEP" generate \
  --model "$TMP/tiny-fp8.h5" --prompt-ids 3,9 --max-tokens 2 $fix --threads 1 \
  --log-dir "$TMP/logs2" > "$TMP/out" 2> "$TMP/err" || { cat "$TMP/err"; exit 1; }
grep -q "^output_ids:" "$TMP/out" || { echo "no output with $fix"; exit 1; }
grep -q "host .*: 2 ranks need .* of 1.07 GB" "$TMP/logs2/rank-0000.log" || exit 1

# 3. A bad override is a clear error, not a crash.
if DPEP_MEMORY_AVAILABLE=lots "$DPEP" generate --model "$TMP/tiny-fp8.h5" --prompt-ids 3 \
  --log-dir "$TMP/logs3" > /dev/null 2> "$TMP/err"; then echo "bad override accepted"; exit 1; fi
grep -q "DPEP_MEMORY_AVAILABLE: 'lots' is not a byte size" "$TMP/err" || { cat "$TMP/err"; exit 1; }
echo "e2e_memory_plan: ok"
