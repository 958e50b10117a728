#!/usr/bin/env bash
# --trace-dir and the run pictures at -np 2 on a tiny model:
#  - offline: one Chrome trace per rank (DIR/rank-NNNN.json) that parses as JSON, names its
#    process "rank N (host)", holds steps, every forward phase, control-plane waits, nested
#    spans, the same number of steps on both ranks; SVG pictures next to the logs are well
#    formed XML and carry the run's routed pairs; `dpep report LOGDIR` draws the same pictures
#    from the logs alone;
#  - generate and serve (stopped by SIGTERM) leave parseable traces and reportable logs;
#  - a run killed mid-way (kill -9 of rank 1) still leaves parseable traces;
#  - report errors: missing log dir, a log without a summary.
# Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
JOB=""
. "$(dirname "$0")/lib/serve.sh"
stop_job() {
  serve_stop "$JOB" 5
  JOB=""
}
trap 'stop_job; rm -rf "$W"' EXIT

"$DPEP" init-model --preset tiny --seed 3 --dtype bf16 --out "$W/m.h5" >/dev/null 2>&1

# check_traces DIR NP MIN_STEPS: every rank's file parses and holds the run's phases.
check_traces() {
  python3 - "$@" <<'PY'
import json, os, sys
d, np_, min_steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
assert files == [f"rank-{r:04d}.json" for r in range(np_)], files
steps = []
for r in range(np_):
    j = json.load(open(os.path.join(d, f"rank-{r:04d}.json")))
    ev = j["traceEvents"]
    names = {}
    for e in ev:
        names[e["name"]] = names.get(e["name"], 0) + 1
        assert e["pid"] == r, e
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0, e
    proc = [e for e in ev if e["name"] == "process_name"]
    assert len(proc) == 1 and proc[0]["args"]["name"].startswith(f"rank {r} ("), proc
    for n in ["step", "scatter", "agree", "gather", "schedule", "forward", "sampling",
              "attention", "router", "dispatch", "experts", "combine", "shared", "dense mlp", "head"]:
        assert names.get(n, 0) >= min_steps, (r, n, names)
    # Spans of one thread nest (Perfetto draws them as a stack).
    by_tid = {}
    for e in ev:
        if e["ph"] == "X":
            by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_tid.values():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack = []
        for b, end in spans:
            # whole nanoseconds in the file; as doubles of ~1e10 us, compare to 1 ns
            while stack and stack[-1] <= b + 1e-3:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-3, (b, end, stack[-1])
            stack.append(end)
    steps.append(names["step"])
print(f"ok traces in {d}: {np_} ranks, steps {steps}")
PY
}

# check_svgs DIR EXPECTED_TOTAL_PAIRS PAIRS_RANK0 PAIRS_RANK1: well formed, with the numbers.
check_svgs() {
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
d, total, p0, p1 = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
NS = "{http://www.w3.org/2000/svg}"
def texts(path):
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag == NS + "svg", root.tag
    return [t.text or "" for t in root.iter(NS + "text")], root
load, root = texts(f"{d}/expert-load.svg")
assert any(f"total {total} routed pairs" in t for t in load), load[:4]
assert p0 in load and p1 in load, (p0, p1)          # per-rank totals under the heatmap
assert any(t.startswith("rank 0 (") for t in load) and any(t.startswith("rank 1 (") for t in load)
cells = [r for r in root.iter(NS + "rect") if r.find(NS + "title") is not None]
assert len(cells) > 0
assert sum(int(r.find(NS + "title").text.rsplit(": ", 1)[1].split()[0]) for r in cells) == int(total)
steps, root = texts(f"{d}/step-time.svg")
assert any("busy steps" in t and "loop wall" in t for t in steps), steps[:4]
segs = [r.find(NS + "title").text for r in root.iter(NS + "rect") if r.find(NS + "title") is not None]
for cat in ["attention", "dispatch", "experts", "combine", "sampling"]:
    assert any(s.startswith(f"rank 0: {cat} ") for s in segs), cat
    assert any(s.startswith(f"rank 1: {cat} ") for s in segs), cat
print(f"ok pictures in {d}: well formed, total {total} routed pairs")
PY
}

# 1. offline with a trace, pictures at the end, dpep report on the log dir.
"${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --num-prompts 24 --random-input-len 30 \
  --random-output-len 8 --seed 4 --kv-cache-tokens 2048 --max-batch-size 4 --log-dir "$W/logs" \
  --trace-dir "$W/trace" >"$W/off.out" 2>"$W/off.err"
check_traces "$W/trace" 2 2
P0=$(sed -n 's/^rank 0 .*routed expert pairs \([0-9]*\)$/\1/p' "$W/off.out")
P1=$(sed -n 's/^rank 1 .*routed expert pairs \([0-9]*\)$/\1/p' "$W/off.out")
[ -n "$P0" ] && [ -n "$P1" ] || { cat "$W/off.out"; exit 1; }
grep -q "picture of the run: .*expert-load.svg" "$W/off.err" || { cat "$W/off.err"; exit 1; }
check_svgs "$W/logs" $((P0 + P1)) "$P0" "$P1"
# The same number of steps on every rank (lock step), equal to the summary's busy steps.
python3 - "$W/trace" "$W/logs" <<'PY'
import json, sys
t, l = sys.argv[1], sys.argv[2]
for r in range(2):
    steps = sum(1 for e in json.load(open(f"{t}/rank-{r:04d}.json"))["traceEvents"] if e["name"] == "step")
    line = [x for x in open(f"{l}/rank-{r:04d}.log") if "run summary {" in x][-1]
    s = json.loads(line[line.index("{"):])
    assert s["busy_steps"] == steps and s["complete"], (r, steps, s["busy_steps"])
print("ok trace steps equal the logged busy steps")
PY
"$DPEP" report "$W/logs" --out-dir "$W/report" --trace-dir "$W/trace" >"$W/report.out"
python3 - "$W/trace" <<'PY'
import json, sys
d = sys.argv[1]
parts = [json.load(open(f"{d}/rank-{r:04d}.json"))["traceEvents"] for r in range(2)]
merged = json.load(open(f"{d}/all-ranks.json"))["traceEvents"]
assert len(merged) == sum(len(p) for p in parts), (len(merged), [len(p) for p in parts])
assert {e["pid"] for e in merged} == {0, 1}
print("ok all-ranks.json joins both ranks' traces")
PY
grep -q "total routed pairs $((P0 + P1))," "$W/report.out" || { cat "$W/report.out"; exit 1; }
cmp "$W/logs/expert-load.svg" "$W/report/expert-load.svg"
cmp "$W/logs/step-time.svg" "$W/report/step-time.svg"
echo "ok dpep report draws the offline pictures again from the logs"

# 2. generate with a trace.
printf '%s\n' '{"id":"a","input_ids":[5,6,7,8],"max_tokens":4,"ignore_eos":true}' \
  '{"id":"b","input_ids":[9,10,11],"max_tokens":3,"ignore_eos":true}' >"$W/in.jsonl"
"${MPIRUN[@]}" -np 2 "$DPEP" generate --model "$W/m.h5" --input-file "$W/in.jsonl" --output-file "$W/gen.jsonl" \
  --kv-cache-tokens 1024 --log-dir "$W/logs-gen" --trace-dir "$W/trace-gen" >/dev/null 2>&1
check_traces "$W/trace-gen" 2 2
"$DPEP" report "$W/logs-gen" >/dev/null
[ -s "$W/logs-gen/expert-load.svg" ] && [ -s "$W/logs-gen/step-time.svg" ]
echo "ok generate: traces and report"
# One request at -np 2: rank 1 has no tokens of its own in any step; its trace marks each such
# step "idle" (no local work) and its summary counts them.
"${MPIRUN[@]}" -np 2 "$DPEP" generate --model "$W/m.h5" --prompt-ids 5,6,7 --max-tokens 4 --ignore-eos \
  --kv-cache-tokens 1024 --log-dir "$W/logs-one" --trace-dir "$W/trace-one" >/dev/null 2>&1
python3 - "$W/trace-one" "$W/logs-one" <<'PY'
import json, sys
t, l = sys.argv[1], sys.argv[2]
summ = []
for r in range(2):
    ev = json.load(open(f"{t}/rank-{r:04d}.json"))["traceEvents"]
    steps = [e for e in ev if e["name"] == "step"]
    idle = [e for e in ev if e["name"] == "idle" and e["args"]["reason"] == "no local work"]
    line = [x for x in open(f"{l}/rank-{r:04d}.log") if "run summary {" in x][-1]
    s = json.loads(line[line.index("{"):])
    assert s["empty_steps"] == len(idle), (r, s["empty_steps"], len(idle))
    summ.append((len(steps), len(idle), s["busy_steps"]))
(s0, i0, b0), (s1, i1, b1) = summ
assert s0 == s1 == b0 == b1 >= 4 and i0 == 0 and i1 == s1, summ
print(f"ok one request at -np 2: rank 1 idle in all {s1} steps, rank 0 in none")
PY

# 3. serve with a trace: a few requests, SIGTERM, then the traces and the report.
serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np 2 "$DPEP" serve --model "$W/m.h5" \
  --port 0 --kv-cache-tokens 2048 --log-dir "$W/logs-serve" --trace-dir "$W/trace-serve" || exit 1
JOB=$SERVE_PID
PORT=$SERVE_PORT
python3 - "$PORT" <<'PY'
import json, sys, urllib.request
for i in range(4):
    body = json.dumps({"model": "m", "prompt": [5 + i, 6, 7], "max_tokens": 5, "ignore_eos": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=60))
    assert r["usage"]["completion_tokens"] == 5, r
print("ok serve answered 4 requests")
PY
serve_stop "$JOB" 30
JOB=""
[ "$SERVE_KILLED" = 0 ] || { echo "server did not exit within 30 s of SIGTERM"; exit 1; }
check_traces "$W/trace-serve" 2 4
grep -q '"name":"idle"' "$W/trace-serve/rank-0000.json" || { echo "no idle span in the serve trace"; exit 1; }
"$DPEP" report "$W/logs-serve" >"$W/report-serve.out"
grep -q "total routed pairs" "$W/report-serve.out"
echo "ok serve: traces with idle spans, report"

# 4. kill -9 of rank 1 mid-run: both traces still parse (they are complete after every step).
setsid "${MPIRUN[@]}" -np 2 "$DPEP" offline --model "$W/m.h5" --num-prompts 4000 --random-input-len 30 \
  --random-output-len 64 --kv-cache-tokens 4096 --max-batch-size 8 --log-dir "$W/logs-kill" \
  --trace-dir "$W/trace-kill" >/dev/null 2>&1 &
JOB=$!
for _ in $(seq 1 600); do
  n=$(grep -c '"name":"step"' "$W/trace-kill/rank-0001.json" 2>/dev/null || true)
  [ "${n:-0}" -ge 5 ] && break
  sleep 0.1
done
[ "${n:-0}" -ge 5 ] || { echo "the long run did not start"; exit 1; }
R1=""
for p in $(pgrep -P "$JOB"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && R1=$p
done
[ -n "$R1" ] || { echo "rank 1 not found"; exit 1; }
kill -KILL "$R1"
timeout 30 tail --pid="$JOB" -f /dev/null || { echo "job did not end after kill -9 of rank 1"; exit 1; }
JOB=""
check_traces "$W/trace-kill" 2 5
echo "ok traces parse after kill -9 of rank 1"

# 5. report errors are clear.
if "$DPEP" report "$W/nope" 2>"$W/e1"; then echo "report of a missing dir succeeded"; exit 1; fi
grep -q "not a directory" "$W/e1" || { cat "$W/e1"; exit 1; }
mkdir -p "$W/partial" && echo "2026 info started" >"$W/partial/rank-0000.log"
if "$DPEP" report "$W/partial" 2>"$W/e2"; then echo "report without a summary succeeded"; exit 1; fi
grep -q "rank-0000.log has no run summary" "$W/e2" || { cat "$W/e2"; exit 1; }
echo "ok report errors"
echo "1 passed, 0 failed"
