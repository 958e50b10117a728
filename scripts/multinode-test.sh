#!/usr/bin/env bash
# Several hosts on one machine: N (2..4) network namespaces dpep-h0..h{N-1}, each with its own
# hostname (UTS namespace) and address 10.213.0.{1..N} on a veth pair to the bridge dpep-br0 in
# the root namespace (10.213.0.254, where mpirun runs). mpirun starts one orted per "host" through
# an rsh agent that enters the namespace (ip netns exec + unshare --uts), TCP only. Checks:
#   1. every rank runs on its own host (rank logs' host field) and peers talk TCP between
#      namespaces (established connections between 10.213.0.x addresses);
#   2. `dpep offline --input-file` (greedy) across the hosts gives exactly the one-host outputs;
#   3. `dpep serve` across the hosts answers a request sent to rank 0's address from another
#      namespace (curl inside dpep-h1) with the one-host greedy tokens.
# Everything it made (namespaces, links, processes, files) is removed on exit, also on failure.
# Needs root (ip netns). Usage: scripts/multinode-test.sh [N=2] [DPEP=build/dpep]
set -euo pipefail
N=${1:-2}
DPEP=$(realpath "${2:-$(dirname "$0")/../build/dpep}")
NET=10.213.0
BR=dpep-br0
[[ $N =~ ^[2-4]$ ]] || { echo "N must be 2, 3 or 4"; exit 2; }
[ -x "$DPEP" ] || { echo "no dpep binary at $DPEP"; exit 2; }
for tool in ip unshare mpirun curl python3 ss; do
  command -v $tool >/dev/null || { echo "multinode-test: '$tool' is missing"; exit 1; }
done

# One run at a time on this machine (the names and addresses are fixed).
exec 9>/run/dpep-multinode.lock
flock -w 300 9 || { echo "multinode-test: another run holds /run/dpep-multinode.lock"; exit 1; }

W=$(mktemp -d)
JOB=""
. "$(dirname "$0")/../tests/lib/serve.sh"
remove_hosts() {
  for i in 0 1 2 3; do
    ns=dpep-h$i
    ip netns list 2>/dev/null | grep -qw $ns || continue
    for p in $(ip netns pids $ns 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del $ns 2>/dev/null
    ip link del dpep-v$i 2>/dev/null
  done
  ip link del $BR 2>/dev/null
}
cleanup() {
  set +e
  serve_stop "$JOB" 5
  remove_hosts
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
remove_hosts 2>/dev/null || true  # leftovers of an earlier run that was killed

# --- the hosts -------------------------------------------------------------------------------
if ! ip link add $BR type bridge 2>"$W/err"; then
  echo "multinode-test: cannot create a bridge (need root and CAP_NET_ADMIN): $(cat "$W/err")"; exit 1
fi
ip addr add $NET.254/24 dev $BR
ip link set $BR up
for i in $(seq 0 $((N - 1))); do
  ns=dpep-h$i
  ip netns add $ns 2>"$W/err" || { echo "multinode-test: 'ip netns add' failed: $(cat "$W/err")"; exit 1; }
  ip link add dpep-v$i type veth peer name eth0 netns $ns
  ip link set dpep-v$i master $BR up
  ip -n $ns addr add $NET.$((i + 1))/24 dev eth0
  ip -n $ns link set eth0 up
  ip -n $ns link set lo up
  echo "$NET.$((i + 1)) slots=1" >>"$W/hostfile"
done
# rsh agent: "agent [opts] HOST CMD...": runs CMD in HOST's namespace under its own hostname.
cat >"$W/agent" <<EOF
#!/bin/bash
while [[ \$1 == -* ]]; do shift; done
host=\$1; shift
i=\$(( \${host##*.} - 1 ))
exec ip netns exec dpep-h\$i unshare --uts sh -c "hostname dpep-h\$i && exec \$*"
EOF
chmod +x "$W/agent"

export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LOCAL=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np "$N")
MULTI=(mpirun --allow-run-as-root --hostfile "$W/hostfile" --map-by node --bind-to none -np "$N"
  --mca plm_rsh_agent "$W/agent" --mca plm_rsh_no_tree_spawn 1 --mca mpi_yield_when_idle 1
  --mca btl self,tcp --mca btl_tcp_if_include $NET.0/24 --mca oob_tcp_if_include $NET.0/24)
RUN=(--threads 1 --kv-cache-tokens 4096)

# --- the model and the one-host reference ----------------------------------------------------
# 12 experts: divisible by 2, 3 and 4 ranks.
"$DPEP" init-model --preset tiny --set n_routed_experts=12 --seed 7 --out "$W/m.h5" --quiet >/dev/null 2>&1
python3 - "$W/in.jsonl" <<'PY'
import json, random, sys
random.seed(11)
with open(sys.argv[1], "w") as f:
    for i in range(6):
        ids = [random.randrange(2, 512) for _ in range(random.randrange(3, 40))]
        f.write(json.dumps({"id": f"r{i}", "input_ids": ids, "max_tokens": 12 + i, "temperature": 0,
                            "ignore_eos": True}) + "\n")
PY
"${LOCAL[@]}" "$DPEP" offline --model "$W/m.h5" --input-file "$W/in.jsonl" --output-file "$W/one.jsonl" \
  "${RUN[@]}" --log-dir "$W/logs-one" >"$W/one.out" 2>&1 || { cat "$W/one.out"; echo "one-host run failed"; exit 1; }

compare() {  # a.jsonl b.jsonl label: same output_ids for every id
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
def load(p): return {(o := json.loads(l))["id"]: o["output_ids"] for l in open(p) if l.strip()}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == 6 and a == b, f"{sys.argv[3]}: outputs differ:\n{a}\n{b}"
print(f"ok {sys.argv[3]}: {len(a)} greedy outputs equal the one-host run")
PY
}

check_hosts() {  # logdir: rank r ran on host dpep-hr
  for r in $(seq 0 $((N - 1))); do
    grep -q "rank $r of $N on host dpep-h$r (local rank 0 of 1)" "$(printf '%s/rank-%04d.log' "$1" "$r")" ||
      { echo "rank $r did not run on dpep-h$r:"; head -2 "$1"/rank-*.log; return 1; }
  done
  echo "ok ranks 0..$((N - 1)) ran on hosts dpep-h0..dpep-h$((N - 1)), one rank per node"
}

# --- offline across the hosts ----------------------------------------------------------------
t0=$SECONDS
timeout 120 "${MULTI[@]}" "$DPEP" offline --model "$W/m.h5" --input-file "$W/in.jsonl" \
  --output-file "$W/multi.jsonl" "${RUN[@]}" --log-dir "$W/logs-multi" >"$W/multi.out" 2>&1 ||
  { cat "$W/multi.out"; echo "multi-host offline failed"; exit 1; }
echo "offline on $N hosts: $((SECONDS - t0)) s"
check_hosts "$W/logs-multi"
compare "$W/one.jsonl" "$W/multi.jsonl" "offline on $N hosts"

# --- serve across the hosts, request from another namespace ----------------------------------
SERVE_READY_TIMEOUT=60 serve_start "$W/serve.out" "$W/serve.err" "${MULTI[@]}" "$DPEP" serve \
  --model "$W/m.h5" --host 0.0.0.0 --port 0 "${RUN[@]}" --log-dir "$W/logs-serve" ||
  { JOB=$SERVE_PID; echo "multi-host serve did not start"; exit 1; }
JOB=$SERVE_PID PORT=$SERVE_PORT
check_hosts "$W/logs-serve"
python3 - "$W/in.jsonl" >"$W/reqs" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["id"], json.dumps({"prompt": r["input_ids"], "max_tokens": r["max_tokens"], "temperature": 0,
                               "ignore_eos": True}))
PY
: >"$W/served.jsonl"
while read -r id body; do
  ip netns exec dpep-h1 curl -sS --fail-with-body --max-time 60 "http://$NET.1:$PORT/v1/completions" \
    -H 'Content-Type: application/json' -d "$body" >"$W/resp.json" ||
    { cat "$W/resp.json"; echo "request $id from dpep-h1 failed"; exit 1; }
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({"id": sys.argv[2], "output_ids": r["choices"][0]["token_ids"]}))' \
    "$W/resp.json" "$id" >>"$W/served.jsonl"
done <"$W/reqs"
compare "$W/one.jsonl" "$W/served.jsonl" "serve on $N hosts, requests from dpep-h1 to $NET.1"
# The ranks' MPI traffic is TCP between namespaces: rank 1's host has connections to others.
peers=$(ip netns exec dpep-h1 ss -tnH state established | awk '{print $3 " " $4}' |
  grep -Eo "$NET\.[0-9]+" | sort -u | grep -v "^$NET\.2$" | tr '\n' ' ')
[ -n "$peers" ] || { echo "no TCP connections from dpep-h1 to other hosts"; exit 1; }
echo "ok dpep-h1 ($NET.2) has established TCP connections with: $peers"
serve_stop "$JOB" 20
JOB=""
[ "$SERVE_KILLED" = 0 ] || { echo "serve did not stop within 20 s of SIGTERM"; exit 1; }
echo "multinode-test: $N hosts: passed"
