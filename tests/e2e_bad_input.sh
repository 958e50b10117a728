#!/usr/bin/env bash
# Bad input ends every command with a clear message and a non-zero exit, never a hang:
# truncated, corrupt (superblock, mid-file chunk) and non-HDF5 model files and wrong paths for
# generate/offline/serve (under mpirun -np 2: every rank stops), impossible flags (negative
# sizes, unknown enums, a port out of range or in use), bad JSONL requests.
# (A missing file for generate and -np 3 are in e2e_generate_ranks.sh; unknown --set fields in
# e2e_init_model.sh.) Args: $1 dpep binary, $2 tests/data (unused).
set -uo pipefail
DPEP=$(realpath "$1")
W=$(mktemp -d)
HOLDER="" SERVE_PID=""
. "$(dirname "$0")/lib/serve.sh"
trap '[ -n "$HOLDER" ] && kill $HOLDER 2>/dev/null; serve_stop "$SERVE_PID" 5; rm -rf "$W"' EXIT
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp -np 2)
export OMP_NUM_THREADS=1
passed=0 failed=0
cd "$W" || exit 1

# expect PATTERN CMD...: CMD exits non-zero (not by timeout) within 60 s and prints PATTERN.
expect() {
  local pattern=$1 rc t0=$SECONDS
  shift
  timeout 60 "$@" >out 2>&1
  rc=$?
  if [ $rc != 0 ] && [ $rc != 124 ] && grep -Eq -- "$pattern" out; then
    passed=$((passed + 1))
    printf 'ok   exit %s in %2d s: %s\n' $rc $((SECONDS - t0)) "$(grep -Em1 -- "$pattern" out | cut -c1-150)"
  else
    failed=$((failed + 1))
    echo "FAIL exit $rc, wanted /$pattern/: ${*: -8}"
    tail -n 5 out
  fi
}

"$DPEP" init-model --preset tiny --seed 1 --out m.h5 --quiet >/dev/null 2>&1 || { echo "init-model failed"; exit 1; }
size=$(stat -c %s m.h5)
head -c $((size / 5)) m.h5 >trunc.h5
cp m.h5 superblock.h5 && printf 'garbage!' | dd of=superblock.h5 bs=1 seek=0 conv=notrunc 2>/dev/null
cp m.h5 chunk.h5 && python3 -c "
f = open('chunk.h5', 'r+b'); f.seek($size // 2); f.write(b'\xff' * 4096)"
echo "not a model" >text.h5
RUN=(--log-dir logs --kv-cache-tokens 1024)
OFF=(offline --num-prompts 2 --random-input-len 4 --random-output-len 2)

# Model files: every rank stops, rank 0 names the file and the problem.
for cmd in generate offline serve; do
  case $cmd in
    generate) args=(generate --prompt-ids 1,2,3) ;;
    offline) args=("${OFF[@]}") ;;
    serve) args=(serve --port 0) ;;
  esac
  expect "trunc.h5: cannot open HDF5 file \(truncated" "${MPIRUN[@]}" "$DPEP" "${args[@]}" --model trunc.h5 "${RUN[@]}"
  expect "superblock.h5: not an HDF5 file" "${MPIRUN[@]}" "$DPEP" "${args[@]}" --model superblock.h5 "${RUN[@]}"
  expect "chunk.h5: .*(corrupt|checksum)" "${MPIRUN[@]}" "$DPEP" "${args[@]}" --model chunk.h5 "${RUN[@]}"
  [ $cmd = generate ] && continue  # missing file: e2e_generate_ranks.sh
  expect "text.h5: not an HDF5 file" "$DPEP" "${args[@]}" --model text.h5 "${RUN[@]}"
  expect "nope/m.h5: no such model file" "$DPEP" "${args[@]}" --model nope/m.h5 "${RUN[@]}"
done

# Impossible flags, each run command.
GEN=(generate --model m.h5 --prompt-ids 1,2)
for base in GEN OFF; do
  declare -n b=$base
  m=(); [ $base = OFF ] && m=(--model m.h5)
  expect "max-batch-size must be >= 1" "$DPEP" "${b[@]}" "${m[@]}" "${RUN[@]}" --max-batch-size -1
  expect "kv-cache-tokens must be >= 0" "$DPEP" "${b[@]}" "${m[@]}" --log-dir logs --kv-cache-tokens -5
  expect "page-size must be a multiple of 16" "$DPEP" "${b[@]}" "${m[@]}" "${RUN[@]}" --page-size 0
  expect "threads must be in" "$DPEP" "${b[@]}" "${m[@]}" "${RUN[@]}" --threads -2
  expect "unknown --matmul-dtype 'fp7'" "$DPEP" "${b[@]}" "${m[@]}" "${RUN[@]}" --matmul-dtype fp7
  expect "unknown --log-level 'loud'" "$DPEP" "${b[@]}" "${m[@]}" "${RUN[@]}" --log-level loud
  expect "cache-max-entry-count must be in" "$DPEP" "${b[@]}" "${m[@]}" --log-dir logs --cache-max-entry-count 2
done
expect "num-prompts must be >= 1" "$DPEP" offline --model m.h5 "${RUN[@]}" --num-prompts -1
expect "random-input-len and --random-output-len must be >= 1" "$DPEP" offline --model m.h5 "${RUN[@]}" \
  --num-prompts 2 --random-input-len 4 --random-output-len -3
expect "random-range-ratio must be in" "$DPEP" "${OFF[@]}" --model m.h5 "${RUN[@]}" --random-range-ratio 2
expect "unknown --strategy 'bogus'" "$DPEP" "${OFF[@]}" --model m.h5 "${RUN[@]}" --strategy bogus
expect "unknown --dataset 'foo'" "$DPEP" "${OFF[@]}" --model m.h5 "${RUN[@]}" --dataset foo
expect "unknown preset 'huge'" "$DPEP" "${OFF[@]}" --preset huge "${RUN[@]}"
expect "argument \('abc'\) for option '--num-prompts' is invalid" "$DPEP" offline --num-prompts abc
expect "unrecognised option '--bogus'" "$DPEP" generate --model m.h5 --bogus 1
SRV=(serve --model m.h5 "${RUN[@]}")
expect "port must be in \[0, 65535\]" "$DPEP" "${SRV[@]}" --port 70000
expect "port must be in \[0, 65535\]" "$DPEP" "${SRV[@]}" --port -1
expect "http-threads must be >= 1" "$DPEP" "${SRV[@]}" --http-threads 0
expect "drain-timeout must be >= 0" "$DPEP" "${SRV[@]}" --drain-timeout -1
expect "max-queued-requests must be >= 0" "$DPEP" "${SRV[@]}" --max-queued-requests -1
expect "unknown --strategy 'x'" "$DPEP" "${SRV[@]}" --strategy x
expect "unknown --reasoning-parser 'foo'" "$DPEP" "${SRV[@]}" --reasoning-parser foo
expect "cannot open /nonexistent/tokenizer.json" "$DPEP" "${SRV[@]}" --port 0 --tokenizer /nonexistent
expect "cannot (listen on|bind) 999.1.1.1" "$DPEP" "${SRV[@]}" --port 0 --host 999.1.1.1
# --port in use: every rank stops, rank 0 says which address.
python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
open('port', 'w').write(str(s.getsockname()[1])); time.sleep(120)" &
HOLDER=$!
for _ in $(seq 1 50); do [ -s port ] && break; sleep 0.1; done
expect "cannot listen on 127.0.0.1:$(cat port) \(in use" "${MPIRUN[@]}" "$DPEP" "${SRV[@]}" --port "$(cat port)"
kill $HOLDER; wait $HOLDER 2>/dev/null; HOLDER=""

# --port held by another dpep serve: the second one must fail, not share the port (cpp-httplib's
# default SO_REUSEPORT let both listen and split the connections between them).
if serve_start first.out first.err "$DPEP" serve --model m.h5 --port 0 --log-dir logs-a \
  --kv-cache-tokens 1024; then
  expect "cannot listen on 127.0.0.1:$SERVE_PORT \(in use" "$DPEP" "${SRV[@]}" --port "$SERVE_PORT"
else
  failed=$((failed + 1))
fi
serve_stop "$SERVE_PID" 5
SERVE_PID=""

# Bad JSONL requests: a clear error naming the line, or the request reported as failed.
printf '{"input_ids": [1, 2], "max_tokens": 3}\n{"bad json\n' >bad.jsonl
expect "bad.jsonl line 2: not valid JSON" "$DPEP" offline --model m.h5 "${RUN[@]}" --input-file bad.jsonl --output-file o.jsonl
printf '{"id": "a", "input_ids": [1, 99999], "max_tokens": 3}\n' >oov.jsonl
expect "request .* failed: token id 99999 is outside the vocabulary" \
  "$DPEP" offline --model m.h5 "${RUN[@]}" --input-file oov.jsonl --output-file o.jsonl
expect "failed: prompt .* exceeds the model.s context of 2048 tokens" "$DPEP" offline --model m.h5 "${RUN[@]}" \
  --num-prompts 1 --random-input-len 100000 --random-output-len 2

echo "$passed passed, $failed failed"
[ $failed = 0 ]
