#!/usr/bin/env bash
# dpep offline --output-file streams each finished result as one JSON line: after `kill -9` of a
# rank mid-run every line on disk is complete and equal to an uninterrupted run's, and
# --resume (which also drops a torn last line) ends with outputs equal to the uninterrupted
# run's, greedy and sampled (seeds from the ids, explicit seeds kept), in input order. An
# unwritable output path fails before any weight is read; duplicate ids are refused.
# Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
JOB=""
cleanup() {
  if [ -n "$JOB" ]; then
    for p in $(pgrep -P "$JOB" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    kill -KILL "$JOB" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
"$DPEP" init-model --preset tiny --seed 7 --dtype bf16 --out "$W/m.h5" >/dev/null 2>&1
RUN=(--model "$W/m.h5" --input-file "$W/in.jsonl" --max-batch-size 2 --kv-cache-tokens 4096)

# 40 requests: greedy, sampled without a seed, sampled with one; some lines without an id.
python3 - "$W/in.jsonl" <<'PY'
import json, random, sys
random.seed(11)
with open(sys.argv[1], "w") as f:
    for i in range(40):
        r = {"input_ids": [random.randint(2, 511) for _ in range(random.randint(3, 30))],
             "max_tokens": random.randint(100, 400), "ignore_eos": True}
        if i % 7 != 3:
            r["id"] = f"q{i}"
        if i % 3 == 1:
            r["temperature"] = 0.9
            r["top_k"] = 50
        if i % 9 == 2:
            r["temperature"] = 1.0
            r["seed"] = 1234 + i
        f.write(json.dumps(r) + "\n")
PY

# An unwritable output path is refused within seconds, before any weight is read.
t0=$(date +%s.%N)
if "${MPIRUN[@]}" -np 2 "$DPEP" offline "${RUN[@]}" --output-file /nonexistent-dir/out.jsonl \
  --log-dir "$W/logs-bad" >"$W/bad.out" 2>&1; then
  echo "FAIL: an unwritable output path was accepted"; exit 1
fi
dt=$(echo "$(date +%s.%N) - $t0" | bc)
grep -q "cannot write the output file /nonexistent-dir/out.jsonl" "$W/bad.out" ||
  { echo "FAIL: no clear message"; cat "$W/bad.out"; exit 1; }
! grep -q "loaded in" "$W"/logs-bad/*.log || { echo "FAIL: weights were read first"; exit 1; }
(( $(echo "$dt < 8" | bc) )) || { echo "FAIL: took $dt s"; exit 1; }
echo "ok unwritable output refused in $dt s"

# Duplicate ids are refused (a line without an id counts as its 0-based line number).
printf '{"id": "5", "input_ids": [3]}\n{"input_ids": [3]}\n{"input_ids": [3]}\n{"input_ids": [3]}\n{"input_ids": [3]}\n{"input_ids": [3]}\n' >"$W/dup.jsonl"
if "$DPEP" offline --model "$W/m.h5" --input-file "$W/dup.jsonl" --output-file "$W/dup.out" \
  --log-dir "$W/logs-dup" >"$W/dup.txt" 2>&1; then
  echo "FAIL: duplicate ids accepted"; exit 1
fi
grep -q "requests 1 and 6 have the same id '5'" "$W/dup.txt" || { cat "$W/dup.txt"; exit 1; }
echo "ok duplicate ids refused"

# The uninterrupted run.
"${MPIRUN[@]}" -np 2 "$DPEP" offline "${RUN[@]}" --output-file "$W/ref.jsonl" --log-dir "$W/logs-ref" \
  >"$W/ref.out" 2>&1 || { cat "$W/ref.out"; exit 1; }

# The same run, rank 1 killed with SIGKILL once a few results are on disk.
"${MPIRUN[@]}" -np 2 "$DPEP" offline "${RUN[@]}" --output-file "$W/out.jsonl" --log-dir "$W/logs-a" \
  >"$W/a.out" 2>&1 &
JOB=$!
# Rank 1 is found while the run starts, so the kill follows the 4th result at once: the run
# (100-400 tokens per request, 2 per rank at a time) lasts a few seconds after it.
R1=""
for _ in $(seq 1 1200); do
  if [ -z "$R1" ]; then
    for p in $(pgrep -P "$JOB"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && R1=$p
    done
  fi
  [ -n "$R1" ] && [ "$(cat "$W/out.jsonl" 2>/dev/null | wc -l)" -ge 4 ] && break
  kill -0 "$JOB" 2>/dev/null || break
  sleep 0.05
done
[ -n "$R1" ] || { echo "FAIL: rank 1 not found"; cat "$W/a.out"; exit 1; }
kill -KILL "$R1" || { echo "FAIL: the run ended before rank 1 could be killed"; cat "$W/a.out"; exit 1; }
rc=0
wait "$JOB" || rc=$?
JOB=""
[ "$rc" != 0 ] || { echo "FAIL: the killed run exited 0"; exit 1; }
python3 - "$W/ref.jsonl" "$W/out.jsonl" <<'PY'
import json, sys
ref = {j["id"]: j for j in map(json.loads, open(sys.argv[1]))}
raw = open(sys.argv[2]).read()
assert raw.endswith("\n"), "a torn line after kill -9"
got = [json.loads(l) for l in raw.splitlines()]
assert 4 <= len(got) < len(ref), f"{len(got)} of {len(ref)} results: not killed mid-run"
for g in got:
    assert g == ref[g["id"]], (g, ref[g["id"]])
print(f"ok kill -9 of rank 1: {len(got)} finished results on disk, each equal to the uninterrupted run's")
PY

# A torn last line (a write cut short) is dropped by --resume; then only the rest runs.
printf '{"id": "q0", "output_ids": [1, 2' >>"$W/out.jsonl"
kept=$(grep -c . "$W/out.jsonl")
"${MPIRUN[@]}" -np 2 "$DPEP" offline "${RUN[@]}" --output-file "$W/out.jsonl" --resume \
  --log-dir "$W/logs-b" >"$W/b.out" 2>&1 || { cat "$W/b.out"; exit 1; }
grep -q "results kept in .*(a torn last line was dropped), $((40 - kept + 1)) of 40 requests to run" "$W/b.out" ||
  { echo "FAIL: resume summary"; grep resume "$W/b.out"; exit 1; }
cmp "$W/ref.jsonl" "$W/out.jsonl" || { echo "FAIL: resumed output differs from the uninterrupted run"; exit 1; }
echo "ok --resume: $((kept - 1)) kept, output equal to the uninterrupted run (input order)"

# Resuming a finished file runs nothing and changes nothing.
"$DPEP" offline "${RUN[@]}" --output-file "$W/out.jsonl" --resume --log-dir "$W/logs-c" >"$W/c.out" 2>&1
grep -q "40 results kept .*, 0 of 40 requests to run" "$W/c.out" || { cat "$W/c.out"; exit 1; }
cmp "$W/ref.jsonl" "$W/out.jsonl"
echo "ok resume of a complete file"
echo "1 passed, 0 failed"
