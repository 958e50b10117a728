#!/usr/bin/env bash
# Thread layouts and decode batch sizes on the bench preset (default bf16), one run:
#   1 rank x 2 threads against 2 ranks x 1 thread (64 prompts 256/64, two rounds alternated);
#   decode with 32 and with 256 running sequences per rank at np 2 (32 in / 128 out);
#   the bf16 peak (oneDNN 2048^3, 2 threads) that "Model matmul GFLOP/s" is stated against.
# Usage: perf/thread_layout_bench.sh   (model: /tmp/dpep-one-seq/bench.h5, made if missing)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd /tmp
D=$ROOT/build/dpep
M=/tmp/dpep-one-seq/bench.h5
[[ -f $M ]] || { mkdir -p /tmp/dpep-one-seq; $D init-model --preset bench --seed 1 --dtype bf16 --out $M --quiet; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u), commit $(git -C "$ROOT" rev-parse --short HEAD)"
res() { [[ -f $1 ]] || { echo "$2: run failed"; return; }; python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]}: output {j['output_throughput']:.1f} tok/s, total {j['total_throughput']:.1f} tok/s, matmul {j['Model matmul GFLOP/s']} GFLOP/s, median TPOT {j['median_tpot_ms']:.1f} ms, duration {j['duration']:.1f} s\")" "$1" "$2"; }
rm -f /tmp/m2-1x2.json /tmp/m2-2x1.json /tmp/m2-dec32.json /tmp/m2-dec256.json
for round in 1 2; do
  rm -f /tmp/m2-1x2.json /tmp/m2-2x1.json
  "${MPI[@]}" -np 1 $D offline --model $M --num-prompts 64 --random-input-len 256 --random-output-len 64 --random-range-ratio 1 --threads 2 --max-batch-size 64 --log-dir /tmp/m2-a --result-file /tmp/m2-1x2.json >/dev/null 2>&1
  res /tmp/m2-1x2.json "round $round: 1 rank x 2 threads, 64 prompts 256/64"
  "${MPI[@]}" -np 2 $D offline --model $M --num-prompts 64 --random-input-len 256 --random-output-len 64 --random-range-ratio 1 --threads 1 --max-batch-size 32 --log-dir /tmp/m2-b --result-file /tmp/m2-2x1.json >/dev/null 2>&1
  res /tmp/m2-2x1.json "round $round: 2 ranks x 1 thread, 64 prompts 256/64"
done
for n in 32 256; do
  "${MPI[@]}" -np 2 $D offline --model $M --num-prompts $((2 * n)) --random-input-len 32 --random-output-len 128 --random-range-ratio 1 --max-batch-size $n --kv-cache-tokens 65536 --log-dir /tmp/m2-c$n --result-file /tmp/m2-dec$n.json >/dev/null 2>&1
  res /tmp/m2-dec$n.json "np 2, $n sequences per rank, 32 in / 128 out"
done
OMP_NUM_THREADS=2 "$ROOT"/build/perf/bench_matmul --bf16-peak
