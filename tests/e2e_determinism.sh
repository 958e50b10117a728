#!/usr/bin/env bash
# The default (bf16) mode is deterministic: every request's output tokens and top-5 log-probs
# (float32, printed in full) are bitwise the same at -np 1, 2 and 4, with 1 and 2 threads per
# rank, with chunked prefill (--max-prefill-tokens 32) and unchunked, batched and one request at
# a time (--max-batch-size 1), and with prefix-cache hits (requests sharing a 128-token prefix,
# one at a time, cache on) and without them. Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)

"$DPEP" init-model --preset small --seed 11 --out "$W/m.h5" --quiet 2>/dev/null
python3 - "$W/in.jsonl" <<'PY'
import json, random, sys
random.seed(11)
shared = [random.randrange(3, 4000) for _ in range(128)]
prompts = [[random.randrange(3, 4000) for _ in range(n)] for n in (1, 5, 40, 77, 130, 300)]
prompts += [shared + [random.randrange(3, 4000) for _ in range(n)] for n in (3, 20, 70)]
with open(sys.argv[1], "w") as f:
    for i, p in enumerate(prompts):
        f.write(json.dumps({"id": f"p{i}", "input_ids": p, "max_tokens": 10, "ignore_eos": True,
                            "top_logprobs": 5}) + "\n")
PY

run() {  # name np flags...
  local name=$1 np=$2
  shift 2
  "${MPIRUN[@]}" -np "$np" "$DPEP" generate --model "$W/m.h5" --input-file "$W/in.jsonl" \
    --output-file "$W/$name.jsonl" --kv-cache-tokens 4096 --log-dir "$W/logs-$name" "$@" \
    >/dev/null 2>"$W/$name.err" || { echo "run $name failed:"; cat "$W/$name.err"; exit 1; }
}
same() {  # name: its output equals the reference's, byte for byte
  cmp -s "$W/ref.jsonl" "$W/$1.jsonl" && { echo "ok $1: identical to np 1"; return; }
  python3 - "$W/ref.jsonl" "$W/$1.jsonl" "$1" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
for x, y in zip(a, b):
    if x != y:
        print(f"{sys.argv[3]}: request {x['id']} differs: tokens equal {x['output_ids'] == y['output_ids']}")
PY
  exit 1
}

run ref 1 --threads 2
grep -q "matmul: bf16" "$W/logs-ref/rank-0000.log" || { echo "the default mode is not bf16 here"; exit 1; }
[ "$(wc -l <"$W/ref.jsonl")" = 9 ] || { echo "expected 9 results"; exit 1; }
run np2 2 --threads 1
same np2
run np4 4 --threads 1
same np4
run threads1 1 --threads 1
same threads1
run chunked 1 --threads 2 --max-prefill-tokens 32
same chunked
run alone 1 --threads 2 --max-batch-size 1
same alone
# One at a time with the cache on: the requests after the first of the shared-prefix group
# reuse its pages (hits counted in the log); with the cache off nothing is reused.
run alone_nocache 1 --threads 2 --max-batch-size 1 --disable-prefix-caching
same alone_nocache
hits=$(sed -n 's/.*prefix cache: \([0-9]*\) of [0-9]* admitted prompt tokens hit.*/\1/p' "$W/logs-alone/rank-0000.log")
[ -n "$hits" ] && [ "$hits" -ge 128 ] || { echo "expected prefix-cache hits with the cache on, got '$hits'"; exit 1; }
echo "ok prefix cache: $hits prompt tokens reused, outputs unchanged"
run np2_chunked 2 --threads 1 --max-prefill-tokens 48
same np2_chunked
echo "1 passed, 0 failed"
