#!/usr/bin/env bash
# SIGTERM to scripts/dpep-mpirun drains in full: requests in flight (longer than the ~2 s that
# mpirun itself allows after a SIGTERM) all finish with 200 and their full length, a new request
# gets 503 or a refused connection, every rank exits 0 and so does the wrapper.
# Args: $1 dpep binary, $2 tests/data.
set -euo pipefail
DPEP=$1
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOB=""
. "$HERE/lib/serve.sh"
cleanup() {
  serve_stop "$JOB" 3
  rm -rf "$W"
}
trap cleanup EXIT
"$DPEP" init-model --preset tiny --seed 1 --out "$W/m.h5" --quiet 2>/dev/null
serve_start "$W/serve.out" "$W/serve.err" "$HERE/../scripts/dpep-mpirun" --oversubscribe \
  --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp -np 2 "$DPEP" serve --model "$W/m.h5" \
  --port 0 --log-dir "$W/logs" --kv-cache-tokens 8192 --max-batch-size 1 --drain-timeout 120 ||
  { echo "FAIL: serve did not start"; exit 1; }
JOB=$SERVE_PID
PORT=$SERVE_PORT

# 6 requests of 1900 tokens, one running slot per rank: each rank runs 3 in a row, several
# seconds in all. SIGTERM goes to the wrapper once every request has been accepted.
python3 - "$PORT" "$JOB" <<'PY'
import http.client, json, os, signal, sys, threading, time
port, job = int(sys.argv[1]), int(sys.argv[2])
body = {"prompt": [5, 6, 7], "max_tokens": 1900, "ignore_eos": True}
res = []
def one():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    res.append((r.status, json.loads(r.read())))
def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
ts = [threading.Thread(target=one) for _ in range(6)]
for t in ts: t.start()
for _ in range(500):  # all six inside the server (running or waiting)
    waiting = metric("dpep:num_requests_waiting")
    if metric("dpep:num_requests_running") + waiting == 6:
        break
    time.sleep(0.01)
else:
    raise SystemExit("FAIL: the requests did not all arrive")
# One running slot per rank: at least 4 of the 6 had not started when the signal came, so the
# drain below really ran whole requests after SIGTERM (whatever the speed of the machine).
assert waiting >= 4, f"only {waiting} requests were waiting at SIGTERM"
t0 = time.time()
os.kill(job, signal.SIGTERM)
time.sleep(0.5)
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    s, msg = r.status, r.read().decode()
    assert s == 503, f"a new request during the drain got {s}"
    # The reason, not only the refusal: dpep-mpirun passes the SIGTERM on as SIGUSR1.
    assert "shutting down: signal 10 (SIGUSR1: a stop request forwarded by dpep-mpirun)" in msg, msg
except ConnectionError:
    pass
for t in ts: t.join(300)
took = time.time() - t0
assert len(res) == 6, res
for s, b in res:
    assert s == 200, (s, b)
    assert b["choices"][0]["finish_reason"] == "length" and b["usage"]["completion_tokens"] == 1900, b
print(f"ok 6 in-flight requests finished in full, {took:.1f} s after SIGTERM")
PY
rc=0
timeout 60 tail --pid="$JOB" -f /dev/null || { echo "FAIL: the job did not end after the drain"; exit 1; }
wait "$JOB" || rc=$?
JOB=""
[ "$rc" = 0 ] || { echo "FAIL: dpep-mpirun exited $rc"; cat "$W/serve.err"; exit 1; }
grep -q "draining 6 requests" "$W/serve.err" || { echo "FAIL: no drain message"; cat "$W/serve.err"; exit 1; }
grep -q "serve: loop ended" "$W/logs/rank-0001.log"
echo "ok SIGTERM to dpep-mpirun: full drain, exit 0"
echo "1 passed, 0 failed"
