#!/usr/bin/env bash
# Prefix caching end to end at 2 ranks (float32 model): requests sharing long system prompts,
# a repeated prompt and a preemption-prone small cache give the same greedy outputs with and
# without caching and with every strategy; the cache is hit (rank logs), cache_aware computes
# fewer prompt tokens than least_tokens, and --dataset generated-shared-prefix runs offline.
# Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
"$DPEP" init-model --preset tiny --seed 3 --out "$W/m.h5" >/dev/null 2>&1
python3 - "$W/in.jsonl" <<'PY'
import json, random, sys
random.seed(11)
systems = [[random.randint(2, 511) for _ in range(random.randint(40, 90))] for _ in range(3)]
with open(sys.argv[1], "w") as f:
    reqs = []
    for i in range(18):
        q = [random.randint(2, 511) for _ in range(random.randint(1, 20))]
        reqs.append({"id": f"r{i}", "input_ids": systems[i % 3] + q, "max_tokens": random.randint(2, 10),
                     "ignore_eos": True})
    reqs.append(dict(reqs[4], id="dup"))
    for r in reqs:
        f.write(json.dumps(r) + "\n")
PY
run() {  # name, flags...
  local name=$1; shift
  "${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --input-file "$W/in.jsonl" --output-file "$W/$name.jsonl" \
    --max-batch-size 4 --max-prefill-tokens 48 --page-size 16 --log-dir "$W/logs_$name" "$@" > "$W/$name.txt" 2>&1 \
    || { cat "$W/$name.txt"; exit 1; }
}
run off --disable-prefix-caching --kv-cache-tokens 4096
run least --strategy least_tokens --kv-cache-tokens 4096
run aware --strategy cache_aware --kv-cache-tokens 4096
run small --strategy cache_aware --kv-cache-tokens 256   # evictions and preemptions
python3 - "$W" <<'PY'
import json, re, sys, glob
w = sys.argv[1]
def outs(n):
    return {o["id"]: o["output_ids"] for o in map(json.loads, open(f"{w}/{n}.jsonl"))}
ref = outs("off")
assert len(ref) == 19
for n in ("least", "aware", "small"):
    assert outs(n) == ref, f"{n}: outputs differ from the run without prefix caching"
def totals(n):
    hit = computed = 0
    for f in glob.glob(f"{w}/logs_{n}/*.log"):
        t = open(f).read()
        m = re.findall(r"loop done: \d+ steps \(\d+ busy\), (\d+) tokens computed.*prefix cache: (\d+) of (\d+)", t)
        assert m, f
        computed += int(m[-1][0]); hit += int(m[-1][1])
    return hit, computed
h_off, c_off = totals("off")
h_least, c_least = totals("least")
h_aware, c_aware = totals("aware")
evicted = sum(int(re.findall(r"pages cached, (\d+) evicted", open(f).read())[-1])
              for f in glob.glob(f"{w}/logs_small/*.log"))
assert evicted > 0, "the small cache should evict"
assert h_off == 0 and h_least > 0 and h_aware > 0, (h_off, h_least, h_aware)
assert c_aware < c_least < c_off, (c_aware, c_least, c_off)
print(f"ok: same greedy outputs with and without caching; tokens computed {c_off} (off), "
      f"{c_least} (least_tokens), {c_aware} (cache_aware); {evicted} pages evicted with the small cache")
PY
"${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --dataset generated-shared-prefix --gsp-num-groups 3 \
  --gsp-prompts-per-group 4 --gsp-system-prompt-len 100 --gsp-question-len 8 --gsp-output-len 3 \
  --log-dir "$W/logs_gsp" --result-file "$W/gsp.json" > "$W/gsp.txt" 2>&1 || { cat "$W/gsp.txt"; exit 1; }
python3 - "$W/gsp.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["completed"] == 12 and r["total_output_tokens"] == 36 and r["total_input_tokens"] == 12 * 108, r
assert r["dataset_name"] == "generated-shared-prefix" and r["gsp_num_groups"] == 3, r
print("ok: generated-shared-prefix offline")
PY
