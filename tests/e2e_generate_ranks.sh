#!/usr/bin/env bash
# generate under mpirun at -np 1, 2, 4 gives transformers' greedy tokens on both fixtures,
# including runs where some ranks get no request; -np 3 (does not divide 8 experts) fails
# cleanly on every rank. Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1; DATA=$2
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
. "$(dirname "$0")/lib/ompi.sh"
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
for fx in hf-tiny-bf16 hf-tiny-fp8; do
  "$DPEP" convert --hf "$DATA/$fx" --out "$W/$fx.h5" 2>/dev/null
  python3 - "$DATA/$fx/reference.json" "$W/in.jsonl" "$W/one.jsonl" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for i, p in enumerate(ref["prompts"]):
        f.write(json.dumps({"id": f"p{i}", "input_ids": p, "max_tokens": len(ref["greedy"][i]), "ignore_eos": True}) + "\n")
with open(sys.argv[3], "w") as f:  # one request: at np 4 three ranks stay idle
    f.write(json.dumps({"id": "p1", "input_ids": ref["prompts"][1], "max_tokens": len(ref["greedy"][1]), "ignore_eos": True}) + "\n")
PY
  for np in 1 2 4; do
    for input in in one; do
      rm -f "$W/out.jsonl"
      rc=0
      "${MPIRUN[@]}" -np $np "$DPEP" generate --model "$W/$fx.h5" --input-file "$W/$input.jsonl" \
        --output-file "$W/out.jsonl" --kv-cache-tokens 2048 --log-dir "$W/logs" --matmul-dtype fp32 \
        >/dev/null 2> >(tee "$W/err.txt" >&2) || rc=$?
      wait  # the tee
      # Open MPI's spurious "exiting improperly" (tests/lib/ompi.sh): then the outputs decide.
      if [ "$rc" != 0 ] && ! ompi_spurious_exit "$W/err.txt"; then
        echo "FAIL: $fx np=$np $input: mpirun exited $rc; the rank logs end:"
        tail -n 15 "$W"/logs/rank-*.log
        exit 1
      fi
      [ "$rc" = 0 ] || echo "note: $fx np=$np $input: mpirun exited $rc on Open MPI's 'PID 0' report"
      python3 - "$DATA/$fx/reference.json" "$W/out.jsonl" "$fx np=$np $input" "$W/$input.jsonl" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
got = [json.loads(line) for line in open(sys.argv[2])]
want = sum(1 for _ in open(sys.argv[4]))
assert len(got) == want, f"{sys.argv[3]}: {len(got)} results of {want}"
for o in got:
    i = int(o["id"][1:])
    assert o["output_ids"] == ref["greedy"][i], f"{sys.argv[3]}: request {i}: {o['output_ids']} != {ref['greedy'][i]}"
    assert o["finish_reason"] == "length", o
print(f"ok {sys.argv[3]}")
PY
      for r in $(seq 0 $((np - 1))); do
        f=$(printf "%s/logs/rank-%04d.log" "$W" $r)
        grep -q "rank $r of $np" "$f" || { echo "missing rank header in $f"; exit 1; }
      done
    done
  done
done
# -np 3 does not divide 8 experts: every rank exits non-zero with a clear message.
if "${MPIRUN[@]}" -np 3 "$DPEP" generate --model "$W/hf-tiny-bf16.h5" --prompt-ids 1,2,3 --log-dir "$W/logs" >"$W/np3.out" 2>&1; then
  echo "np 3 should have failed"; exit 1
fi
grep -q "do not divide the 8 routed experts" "$W/np3.out" || { cat "$W/np3.out"; exit 1; }
# A missing model file: clear error naming it, non-zero exit, no hang.
if timeout 60 "${MPIRUN[@]}" -np 2 "$DPEP" generate --model "$W/nope.h5" --prompt-ids 1,2 --log-dir "$W/logs" >"$W/missing.out" 2>&1; then
  echo "missing model should have failed"; exit 1
fi
grep -q "nope.h5" "$W/missing.out" || { cat "$W/missing.out"; exit 1; }
echo "1 passed, 0 failed"
