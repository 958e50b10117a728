#!/usr/bin/env bash
# Load test: ROUNDS runs of `dpep bench` with NUM requests at concurrency CONC against one
# `dpep serve` on 2 ranks (tiny preset model, IN prompt tokens, exactly OUT output tokens each).
# Checks, per round and in all:
#   - nothing lost: bench's completed + failed == NUM; every failed request got an HTTP error
#     status (the server's non-200 responses == failed: no connection lost or reset); the server
#     finished (length/stop) exactly the completed ones; every completed request got all OUT
#     tokens (total_output_tokens == completed * OUT);
#   - memory: the RSS of every rank, sampled every 0.2 s, is flat after the warm-up (the first
#     WARMUP rounds, default 1): max(RSS after them) - RSS at their end < RSS_SLACK_MB (default
#     24);
#   - no error or warning line in the rank logs or the server's stderr; SIGTERM to rank 0 then
#     ends the job with exit 0.
# Prints the figures (counts, throughput, RSS start/warm/end/max per rank).
# Usage: perf/load_test.sh [DPEP=build/dpep] [NUM=2000] [CONC=256] [IN=64] [OUT=32] [ROUNDS=5]
# Env: WARMUP=N warm-up rounds (default 1); KEEP=DIR keeps the work files (RSS samples rss.csv, logs, bench JSON) in DIR;
#      MAX_PREFILL=N passes --max-prefill-tokens N (default 0: auto). A rank's RSS plateau is set
#      by its largest step, and how many prompts one step takes depends on when the requests
#      arrive: a cap that every round's first burst reaches makes the warm-up reach the plateau.
set -uo pipefail
DPEP=$(realpath "${1:-$(dirname "$0")/../build/dpep}")
NUM=${2:-2000} CONC=${3:-256} IN=${4:-64} OUT=${5:-32} ROUNDS=${6:-5}
RSS_SLACK_MB=${RSS_SLACK_MB:-24} WARMUP=${WARMUP:-1} MAX_PREFILL=${MAX_PREFILL:-0}
W=${KEEP:-$(mktemp -d)}
mkdir -p "$W"
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp
  --bind-to none)
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOB="" SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  if [ -n "$JOB" ] && kill -0 "$JOB" 2>/dev/null; then
    kill -TERM "$JOB"; timeout 10 tail --pid="$JOB" -f /dev/null; kill -KILL "$JOB" 2>/dev/null
  fi
  [ -z "${KEEP:-}" ] && rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$DPEP" init-model --preset tiny --seed 1 --out "$W/m.h5" --quiet >/dev/null 2>&1 || fail "init-model"
. "$(cd "$(dirname "$0")/.." && pwd)/tests/lib/serve.sh"
serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np 2 "$DPEP" serve --model "$W/m.h5" \
  --port 0 --threads 1 --max-batch-size 128 --kv-cache-tokens 16384 --max-prefill-tokens "$MAX_PREFILL" \
  --http-threads $((CONC + 64)) --log-dir "$W/logs" || fail "server did not start"
JOB=$SERVE_PID
PORT=$SERVE_PORT
PIDS=()
for r in 0 1; do
  for p in $(pgrep -P $JOB); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$r" && PIDS[$r]=$p
  done
  [ -n "${PIDS[$r]:-}" ] || fail "rank $r not found"
done
T0=$(date +%s.%N)
(  # RSS sampler: seconds since T0, RSS of rank 0 and rank 1 in KiB
  while kill -0 "${PIDS[0]}" 2>/dev/null; do
    line=$(echo "$(date +%s.%N) - $T0" | bc)
    for p in "${PIDS[@]}"; do line+=" $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)"; done
    echo "$line"
    sleep 0.2
  done
) >"$W/rss.csv" &
SAMPLER=$!

# ROUNDS runs of NUM requests against the same server; the first WARMUP are the warm-up.
: >"$W/rounds.txt"
for k in $(seq 1 "$ROUNDS"); do
  "$DPEP" bench --base-url "http://127.0.0.1:$PORT" --dataset random --num-prompts "$NUM" \
    --random-input-len "$IN" --random-output-len "$OUT" --random-range-ratio 1 --max-concurrency "$CONC" \
    --seed $((k + 4)) --timeout 300 --result-file "$W/bench-$k.json" >"$W/bench-$k.out" 2>"$W/bench-$k.err"
  echo "$k $? $(echo "$(date +%s.%N) - $T0" | bc)" >>"$W/rounds.txt"
done
sleep 1
curl -sS --max-time 10 "http://127.0.0.1:$PORT/metrics" >"$W/metrics.txt" || fail "no /metrics"
kill "$SAMPLER" 2>/dev/null; SAMPLER=""
kill -TERM "${PIDS[0]}"
timeout 60 tail --pid=$JOB -f /dev/null || fail "server did not stop 60 s after SIGTERM to rank 0"
serve_rc=0; wait $JOB || serve_rc=$?; JOB=""

python3 - "$W" "$NUM" "$OUT" "$serve_rc" "$RSS_SLACK_MB" "$WARMUP" <<'PY'
import json, re, sys, glob
W, NUM, OUT, serve_rc, slack = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
warmup = int(sys.argv[6])
ok = True
def check(cond, msg):
    global ok
    print(("ok   " if cond else "FAIL ") + msg)
    ok &= bool(cond)
rounds = [l.split() for l in open(f"{W}/rounds.txt")]
metrics = open(f"{W}/metrics.txt").read()
by_reason = {k: int(float(v)) for k, v in re.findall(r'^dpep:request_finished_total\{finished_reason="(\w+)"\} (\S+)', metrics, re.M)}
codes = {k: int(float(v)) for k, v in re.findall(r'^dpep:http_responses_total\{code="(\d+)"\} (\S+)', metrics, re.M)}
completed = failed = 0
for k, rc, t_end in rounds:
    b = json.load(open(f"{W}/bench-{k}.json"))
    print(f"round {k}: {b['completed']} completed, {b['failed']} failed of {NUM} in {b['duration']:.1f} s (exit {rc}); "
          f"{b['request_throughput']:.1f} req/s, {b['output_throughput']:.0f} output tok/s, {b['total_throughput']:.0f} total tok/s; "
          f"TTFT mean/p99 {b['mean_ttft_ms']:.0f}/{b['p99_ttft_ms']:.0f} ms, E2E mean/p99 {b['mean_e2e_latency_ms']:.0f}/{b['p99_e2e_latency_ms']:.0f} ms")
    check(b["completed"] + b["failed"] == NUM, f"round {k}: completed + failed == {NUM}")
    check(b["total_output_tokens"] == b["completed"] * OUT, f"round {k}: every completed request got its {OUT} tokens")
    completed += b["completed"]; failed += b["failed"]
print(f"server: finished {by_reason}, HTTP responses {codes}")
explicit = sum(n for c, n in codes.items() if c != "200")
check(failed == explicit, f"every failed request got an HTTP error status ({failed} failed, {explicit} error responses: none lost in transport)")
done = by_reason.get("length", 0) + by_reason.get("stop", 0)
check(done == completed and sum(by_reason.values()) == done,
      f"the server finished {done} requests normally == completed {completed} (none aborted or failed)")
# RSS (rows: t rss0 rss1 in KiB): flat after the warm-up rounds.
rows = [list(map(float, l.split())) for l in open(f"{W}/rss.csv") if len(l.split()) == 3]
warm_end = float(rounds[warmup - 1][2])
check(len(rows) >= 5 and rows[-1][0] > warm_end, f"{len(rows)} RSS samples over {rows[-1][0]:.0f} s")
for r in (0, 1):
    col = [row[r + 1] / 1024 for row in rows]
    after = [row[r + 1] / 1024 for row in rows if row[0] >= warm_end]
    growth = max(after) - after[0]
    print(f"rank {r} RSS MB: start {col[0]:.1f}, end of warm-up ({warmup} round(s)) {after[0]:.1f}, end {col[-1]:.1f}, max {max(col):.1f}")
    check(growth < slack, f"rank {r} RSS flat after the warm-up (max - warm-up = {growth:+.1f} MB < {slack} MB)")
bad = []
for f in sorted(glob.glob(f"{W}/logs/rank-*.log")) + [f"{W}/serve.err"]:
    bad += [f"{f.split('/')[-1]}: {l.strip()}" for l in open(f, errors="replace")
            if re.search(r"\b(error|warn|warning|critical)\b", l, re.I)]
check(not bad, f"no error or warning lines in the rank logs and stderr ({len(bad)})")
for l in bad[:10]: print("   ", l[:200])
check(serve_rc == 0, f"serve exited {serve_rc} after SIGTERM to rank 0")
sys.exit(0 if ok else 1)
PY
