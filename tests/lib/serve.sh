# Shared by the end-to-end scripts: start `dpep serve` (under mpirun or alone) on a port the
# kernel picks (--port 0) and stop it. Source it: . "$HERE/lib/serve.sh"
#
#   serve_start OUT ERR CMD...   runs CMD (which must pass --port 0) in a session of its own with
#                                stdout to OUT and stderr to ERR, waits until it prints
#                                "ready at http://HOST:PORT" and sets SERVE_PID and SERVE_PORT.
#                                Returns 1 (ERR shown) if the server exits or is not ready within
#                                SERVE_READY_TIMEOUT seconds (default 120).
#   serve_stop PID [GRACE]       SIGTERM to PID's session, SIGKILL after GRACE seconds (default
#                                10); waits for it. A PID that is gone already is fine. Sets
#                                SERVE_KILLED=1 if PID outlived the grace (0 if SIGTERM did it).
#   serve_rank0_pid PID          the rank-0 process under an mpirun PID.

serve_start() {
  local out=$1 err=$2
  shift 2
  : >"$out"
  setsid "$@" >"$out" 2>"$err" &
  SERVE_PID=$!
  SERVE_PORT=""
  local deadline=$((SECONDS + ${SERVE_READY_TIMEOUT:-120}))
  while ((SECONDS < deadline)); do
    SERVE_PORT=$(sed -n 's|.*ready at http://[^:]*:\([0-9][0-9]*\).*|\1|p' "$out" | head -n 1)
    [[ -n $SERVE_PORT ]] && return 0
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
      echo "serve exited before it was ready:"; cat "$err"; return 1
    fi
    sleep 0.1
  done
  echo "serve not ready after ${SERVE_READY_TIMEOUT:-120} s:"; cat "$err"; return 1
}

serve_stop() {
  local pid=$1 grace=${2:-10}
  SERVE_KILLED=0
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && SERVE_KILLED=1
  # Whatever is left: the ranks first (children of mpirun; they may sit in process groups of
  # their own), then the session.
  pkill -KILL -P "$pid" 2>/dev/null || true
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 0
}

serve_rank0_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0; then
      echo "$p"
      return
    fi
  done
}
