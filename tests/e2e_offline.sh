#!/usr/bin/env bash
# dpep offline under mpirun: continuous batching (many mixed requests, small batch and prefill
# budget) gives each request the tokens it gets alone, at -np 1 and 2; the random dataset
# completes every request with exactly its drawn lengths; the result file has bench_serving's
# fields; a request that can never fit in the cache fails cleanly.
# Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
"$DPEP" init-model --preset tiny --seed 7 --dtype bf16 --out "$W/m.h5" >/dev/null 2>&1
python3 - "$W/in.jsonl" <<'PY'
import json, random, sys
random.seed(5)
with open(sys.argv[1], "w") as f:
    for i in range(16):
        n = random.randint(1, 40)
        f.write(json.dumps({"id": f"r{i}", "input_ids": [random.randint(2, 511) for _ in range(n)],
                            "max_tokens": random.randint(1, 12), "ignore_eos": True}) + "\n")
PY
# Each request alone.
python3 - "$W/in.jsonl" > "$W/alone.args" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["id"], ",".join(map(str, r["input_ids"])), r["max_tokens"])
PY
while read -r id ids n; do
  "$DPEP" generate --model "$W/m.h5" --prompt-ids "$ids" --max-tokens "$n" --ignore-eos --kv-cache-tokens 1024 --matmul-dtype fp32 \
    --log-dir "$W/logs" | sed -n "s/^output_ids: /$id /p" >> "$W/alone.txt"
done < "$W/alone.args"
for np in 1 2; do
  "${MPIRUN[@]}" -np $np "$DPEP" offline --model "$W/m.h5" --input-file "$W/in.jsonl" --output-file "$W/out$np.jsonl" \
    --max-batch-size 3 --max-prefill-tokens 16 --kv-cache-tokens 1024 --matmul-dtype fp32 --log-dir "$W/logs$np" > "$W/offline$np.txt" 2>&1
  python3 - "$W/alone.txt" "$W/out$np.jsonl" $np <<'PY'
import json, sys
alone = {l.split()[0]: [int(x) for x in l.split()[1].split(",")] for l in open(sys.argv[1])}
outs = [json.loads(l) for l in open(sys.argv[2])]
assert len(outs) == len(alone) == 16, (len(outs), len(alone))
for o in outs:
    assert o["output_ids"] == alone[o["id"]], f"np={sys.argv[3]} {o['id']}: {o['output_ids']} != {alone[o['id']]}"
print(f"ok: continuous batching at np={sys.argv[3]} equals each request alone")
PY
done
# Random dataset: every request completes with its drawn output length; result file fields.
"${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --num-prompts 40 --random-input-len 30 --random-output-len 10 \
  --random-range-ratio 0.5 --seed 3 --kv-cache-tokens 2048 --log-dir "$W/logsr" --result-file "$W/r.json" > "$W/r.txt" 2>&1
grep -q "Serving Benchmark Result" "$W/r.txt"
grep -q "expert load balance" "$W/r.txt"
python3 - "$W/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ["completed", "total_input_tokens", "total_output_tokens", "request_throughput", "output_throughput",
          "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "p99_itl_ms", "duration",
          "concurrency", "output_throughput_per_rank"]:
    assert k in r, k
assert r["completed"] == 40 and r["failed"] == 0, r
assert 40 * 5 <= r["total_output_tokens"] <= 40 * 10, r["total_output_tokens"]
assert 40 * 15 <= r["total_input_tokens"] <= 40 * 30, r["total_input_tokens"]
assert len(r["output_throughput_per_rank"]) == 2
print("ok: random dataset and result file")
PY
# A request that can never fit in the KV cache: a clear error for it, the others still answered.
printf '%s\n' '{"id":"big","input_ids":[5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24],"max_tokens":50}' \
  '{"id":"small","input_ids":[5,6],"max_tokens":3,"ignore_eos":true}' > "$W/big.jsonl"
if "${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --input-file "$W/big.jsonl" --output-file "$W/big.out" \
    --kv-cache-tokens 32 --log-dir "$W/logsb" > "$W/big.txt" 2>&1; then
  echo "the oversized request should make offline exit non-zero"; exit 1
fi
grep -q "can never fit in the KV cache" "$W/big.txt" || { cat "$W/big.txt"; exit 1; }
python3 - "$W/big.out" <<'PY'
import json, sys
o = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[1])}
assert o["big"]["finish_reason"] == "error" and "never fit" in o["big"]["error"], o["big"]
assert o["small"]["finish_reason"] == "length" and len(o["small"]["output_ids"]) == 3, o["small"]
print("ok: oversized request fails cleanly, the rest are answered")
PY
echo "1 passed, 0 failed"
