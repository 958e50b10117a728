#!/usr/bin/env bash
# The offline benchmark, with its rooflines measured in the same run:
#   1. one-core sgemm peak (OpenBLAS, 2048^3), bf16 GEMM rates (perf/bench_matmul) and the bf16
#      peak (oneDNN 2048^3 bf16 with every core); MFU is stated against the peak of the run's dtype
#   2. one-core read bandwidth (perf/bench_stream)
#   3. mpirun -np NP dpep offline on the `bench` preset, P prompts, input I, output O,
#      with --simulate-perfect-eplb off and on
#   4. one request alone on one rank and one thread: decode tok/s against the bandwidth bound
# Usage: perf/offline_bench.sh [NP=2] [P=512] [I=256] [O=256] [DTYPE=bf16]
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${1:-2}; P=${2:-512}; I=${3:-256}; O=${4:-256}; DTYPE=${5:-bf16}
W=${DPEP_BENCH_DIR:-/tmp/dpep-bench}; mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake --build build -j"$(nproc)" --target dpep bench_matmul bench_stream >/dev/null
[[ -f $W/bench.h5 ]] || build/dpep init-model --preset bench --seed 1 --dtype bf16 --out "$W/bench.h5" >/dev/null
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u)"
OMP_NUM_THREADS=1 build/perf/bench_matmul | tee "$W/matmul.txt"
PEAK=$(sed -n 's/.*one-core sgemm peak): \([0-9.]*\)/\1/p' "$W/matmul.txt")
OMP_NUM_THREADS=$(nproc) build/perf/bench_matmul --bf16-peak | tee -a "$W/matmul.txt"
BF16_PEAK=$(sed -n 's/^bf16 peak.*: \([0-9.]*\)$/\1/p' "$W/matmul.txt")
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
build/perf/bench_stream 1024 | tee "$W/stream.txt"
BW=$(sed -n 's/.*MB buffer: \([0-9.]*\) GB\/s.*/\1/p' "$W/stream.txt")
run() {  # name, extra flags...
  local name=$1; shift
  mpirun --oversubscribe --bind-to none -np "$NP" build/dpep offline --model "$W/bench.h5" --num-prompts "$P" \
    --random-input-len "$I" --random-output-len "$O" --random-range-ratio 1 --matmul-dtype "$DTYPE" \
    --max-batch-size 256 --kv-cache-tokens $(( (P / NP + 8) * (I + O) )) --log-dir "$W/logs-$name" \
    --result-file "$W/$name.json" "$@" 2>/dev/null | tee "$W/$name.txt"
}
run eplb-off
run eplb-on --simulate-perfect-eplb
build/dpep offline --model "$W/bench.h5" --num-prompts 1 --random-input-len "$I" --random-output-len "$O" \
  --random-range-ratio 1 --matmul-dtype "$DTYPE" --threads 1 --kv-cache-tokens 4096 --log-dir "$W/logs-single" \
  --result-file "$W/single.json" 2>/dev/null > "$W/single.txt"
python3 - "$W" "$PEAK" "$BW" "$NP" "$BF16_PEAK" "$DTYPE" <<'PY'
import json, sys
w, peak, bw, np_ = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
bf16_peak, dtype = float(sys.argv[5]), sys.argv[6]
# MFU against the roofline of the run's arithmetic: the bf16 peak of the whole machine in bf16,
# np x the one-core sgemm peak in float32.
roof, roof_name = (bf16_peak, f"bf16 peak ({bf16_peak:.1f}, oneDNN 2048^3, all cores)") \
    if dtype != "fp32" else (np_ * peak, f"{np_} x one-core sgemm peak ({peak:.1f})")
print("\n## Summary")
for name in ("eplb-off", "eplb-on"):
    r = json.load(open(f"{w}/{name}.json"))
    gf = r["model_flops"] / r["duration"] / 1e9
    print(f"{name}: output {r['output_throughput']:.1f} tok/s, total {r['total_throughput']:.1f} tok/s, "
          f"model matmul {gf:.1f} GFLOP/s = {100 * gf / roof:.1f}% of the {roof_name}, "
          f"mean TTFT {r['mean_ttft_ms']:.0f} ms, mean TPOT {r['mean_tpot_ms']:.1f} ms")
s = json.load(open(f"{w}/single.json"))
decode = 1000.0 / s["mean_tpot_ms"]
bytes_per_token = s["active_params_per_token"] * 2  # bf16 weights
bound = bw * 1e9 / bytes_per_token
print(f"one request, one rank, one thread: decode {decode:.1f} tok/s (TPOT {s['mean_tpot_ms']:.2f} ms); "
      f"bandwidth bound {bound:.1f} tok/s ({bytes_per_token / 1e6:.1f} MB active bf16 weights per token at "
      f"{bw:.1f} GB/s) -> {100 * decode / bound:.0f}% of the bound")
PY
