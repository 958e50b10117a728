#!/usr/bin/env bash
# kill -9 of one non-root rank ends the whole job: (a) during `dpep offline`, (b) during `dpep
# serve` with streamed requests in flight. Every other rank and mpirun exit non-zero within
# 10 s, stderr names the lost rank, and the HTTP clients see their stream end (closed or an
# error event) long before their own time limit: never a hang. (SIGTERM drains are tested by
# tests/e2e_serve.sh.) Args: $1 dpep binary, $2 tests/data (unused).
set -uo pipefail
DPEP=$1
W=$(mktemp -d)
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp)
export OMP_NUM_THREADS=1
JOB=""
cleanup() {
  if [ -n "$JOB" ]; then
    pkill -KILL -P "$JOB" 2>/dev/null
    kill -KILL "$JOB" 2>/dev/null
  fi
  rm -rf "$W"
}
trap cleanup EXIT
passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }

rank_pid() {  # rank -> pid of that rank of the job $JOB (a child of mpirun)
  for p in $(pgrep -P "$JOB"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"; return
    fi
  done
}

# kill_and_check NP VICTIM LABEL: SIGKILL one rank of $JOB, then check the ending.
kill_and_check() {
  local np=$1 victim=$2 label=$3 pids=() p t0 t_job t_ranks rc alive
  for r in $(seq 0 $((np - 1))); do
    p=$(rank_pid "$r")
    [ -n "$p" ] || { bad "$label: rank $r not found"; return 1; }
    pids+=("$p")
  done
  t0=$(date +%s.%N)
  kill -KILL "${pids[$victim]}"
  # Every surviving rank must be gone within 10 s, and mpirun too.
  t_ranks=""
  for _ in $(seq 1 100); do
    alive=0
    for r in $(seq 0 $((np - 1))); do kill -0 "${pids[$r]}" 2>/dev/null && alive=1; done
    if [ $alive = 0 ]; then t_ranks=$(echo "$(date +%s.%N) - $t0" | bc); break; fi
    sleep 0.1
  done
  timeout 15 tail --pid="$JOB" -f /dev/null
  rc=0
  wait "$JOB" || rc=$?
  t_job=$(echo "$(date +%s.%N) - $t0" | bc)
  JOB=""
  [ -n "$t_ranks" ] || { bad "$label: ranks still alive 10 s after the kill"; return 1; }
  (($(echo "$t_job < 10" | bc))) || { bad "$label: mpirun took $t_job s"; return 1; }
  [ "$rc" != 0 ] || { bad "$label: mpirun exited 0"; return 1; }
  grep -Eq "rank $victim (with PID|\(host)" "$W/$label.err" ||
    { bad "$label: no message naming rank $victim"; cat "$W/$label.err"; return 1; }
  printf 'ok %s: kill -9 rank %s of %s: ranks gone in %.1f s, mpirun exit %s in %.1f s\n   "%s"\n' \
    "$label" "$victim" "$np" "$t_ranks" "$rc" "$t_job" \
    "$(grep -E "rank $victim (with PID|\(host)" "$W/$label.err" | head -1 | cut -c1-120)"
  passed=$((passed + 1))
}

"$DPEP" init-model --preset tiny --seed 1 --out "$W/m.h5" --quiet 2>/dev/null || { echo "init-model failed"; exit 1; }

# (a) offline on 4 ranks with far more work than fits in the time before the kill.
setsid "${MPIRUN[@]}" -np 4 "$DPEP" offline --model "$W/m.h5" --num-prompts 4000 --random-input-len 64 \
  --random-output-len 256 --kv-cache-tokens 16384 --max-batch-size 32 --log-dir "$W/logs-off" \
  >"$W/offline.out" 2>"$W/offline.err" &
JOB=$!
for _ in $(seq 1 300); do  # wait until every rank is stepping (the first step summary)
  n=$(grep -l "step" "$W"/logs-off/rank-000*.log 2>/dev/null | wc -l)
  [ "$n" -ge 4 ] && break
  kill -0 "$JOB" 2>/dev/null || break
  sleep 0.1
done
sleep 1
if kill -0 "$JOB" 2>/dev/null; then
  kill_and_check 4 2 offline
else
  bad "offline: the job ended before the kill"; cat "$W/offline.err"; JOB=""
fi

# (b) serve on 2 ranks, 4 long streamed completions in flight, kill -9 of rank 1.
. "$(dirname "$0")/lib/serve.sh"
if serve_start "$W/serve.out" "$W/serve.err" "${MPIRUN[@]}" -np 2 "$DPEP" serve --model "$W/m.h5" \
  --port 0 --log-dir "$W/logs-serve" --kv-cache-tokens 16384 --max-batch-size 8; then
  JOB=$SERVE_PID
  PORT=$SERVE_PORT
else
  JOB=$SERVE_PID
fi
if ! grep -q "ready at" "$W/serve.out"; then
  bad "serve: the server did not start"
else
  cpids=()
  for i in 1 2 3 4; do
    curl -sS -N --max-time 60 -o "$W/stream$i.out" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/completions" \
      -H 'Content-Type: application/json' \
      -d "{\"prompt\": [5, 6, $i], \"max_tokens\": 2000, \"ignore_eos\": true, \"stream\": true}" \
      >"$W/stream$i.code" 2>"$W/stream$i.curlerr" &
    cpids+=($!)
  done
  # Wait until every stream has produced tokens, so the kill lands with requests in flight.
  for _ in $(seq 1 200); do
    n=0
    for i in 1 2 3 4; do [ "$(cat "$W/stream$i.out" 2>/dev/null | grep -c '^data: {')" -ge 3 ] && n=$((n + 1)); done
    [ $n = 4 ] && break
    sleep 0.1
  done
  [ $n = 4 ] || bad "serve: only $n of 4 streams were running before the kill"
  t0=$SECONDS
  kill_and_check 2 1 serve
  cfail=0
  for i in 1 2 3 4; do
    crc=0
    wait "${cpids[$((i - 1))]}" || crc=$?
    events=$(grep -c '^data: {' "$W/stream$i.out")
    # Wanted: the stream was cut (curl 18/52/56: connection closed mid-response) or ended with
    # an error event. curl 28 = its own --max-time fired (a hang); [DONE] alone = ran to the end.
    if [ $crc = 28 ] || { [ $crc = 0 ] && ! grep -q '"error"' "$W/stream$i.out"; }; then
      echo "stream $i: curl exit $crc after $events events"; cfail=1
    else
      echo "stream $i: $events events, then curl exit $crc ($(head -c 80 "$W/stream$i.curlerr" | tr '\n' ' '))"
    fi
  done
  dt=$((SECONDS - t0))
  if [ $cfail = 0 ] && [ $dt -lt 15 ]; then ok "serve: 4 streaming clients ended (closed stream or error event) $dt s after the kill"
  else bad "serve: a client hung or finished normally"; fi
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
