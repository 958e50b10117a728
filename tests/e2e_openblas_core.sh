#!/bin/bash
# Under mpirun, every rank logs the OpenBLAS core it computes with. When OpenBLAS picks a core
# without AVX-512 kernels on an AVX-512 CPU, dpep re-executes itself with
# OPENBLAS_CORETYPE=SKYLAKEX before MPI_Init; DPEP_OPENBLAS_ASSUME_FALLBACK=1 makes it treat the
# core it got as such a fallback, since this machine's OpenBLAS may already choose well.
# $1 = dpep binary, $2 = tests/data.
set -euo pipefail
DPEP=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
MPIRUN=(mpirun --oversubscribe --mca mpi_yield_when_idle 1 --mca btl self,vader,tcp -np 2)
avx512=1
for f in avx512f avx512bw avx512dq avx512vl; do grep -qw "$f" /proc/cpuinfo || avx512=0; done

# Plain run: the header names the core and says nothing was forced.
env -u OPENBLAS_CORETYPE "${MPIRUN[@]}" "$DPEP" generate --preset tiny --prompt-ids 3,9 \
  --max-tokens 1 --log-dir "$TMP/plain" > /dev/null 2> "$TMP/err" || { cat "$TMP/err"; exit 1; }
for r in 0 1; do
  grep -q "OpenBLAS core: [A-Za-z0-9]" "$TMP/plain/rank-000$r.log" ||
    { echo "rank $r logs no OpenBLAS core"; cat "$TMP/plain/rank-000$r.log"; exit 1; }
done

# Forced fallback: both ranks run the re-executed binary with the SkylakeX kernels.
env -u OPENBLAS_CORETYPE DPEP_OPENBLAS_ASSUME_FALLBACK=1 "${MPIRUN[@]}" -x DPEP_OPENBLAS_ASSUME_FALLBACK \
  "$DPEP" generate --preset tiny --prompt-ids 3,9 --max-tokens 1 --log-dir "$TMP/forced" \
  > "$TMP/out" 2> "$TMP/err" || { cat "$TMP/err"; exit 1; }
grep -q "^output_ids:" "$TMP/out" || { echo "no output after re-exec"; exit 1; }
for r in 0 1; do
  line=$(grep "OpenBLAS core:" "$TMP/forced/rank-000$r.log")
  if [ "$avx512" = 1 ]; then
    echo "$line" | grep -q "OpenBLAS core: SkylakeX (OPENBLAS_CORETYPE=SKYLAKEX set by dpep; OpenBLAS chose" ||
      { echo "rank $r did not re-exec: $line"; exit 1; }
  else
    echo "$line" | grep -vq "set by dpep" || { echo "re-exec on a CPU without AVX-512: $line"; exit 1; }
  fi
done
echo "e2e_openblas_core: ok (avx512=$avx512)"
