#!/usr/bin/env bash
# FP8 weights against bf16 weights (issue 12 item 7), in one run on one machine:
#   0. perf/bench_packed_gemm: the kernel alone, one thread, bf16 and FP8 weights of 4096 x 7168
#      (larger than the caches): weight read rate at decode sizes against a plain read;
#   1. the `bench` preset made with init-model --dtype fp8 and --dtype bf16 (same seed);
#   2. one-sequence decode (np 1, 2 threads, 256 in / 128 out, default --matmul-dtype auto),
#      runs alternated fp8, bf16, fp8, bf16 and the best of each kept; the weight bytes per token
#      each model reads (as held in memory), their ratio and the goal (speedup >= 0.85 x ratio);
#   3. with OFFLINE=1: offline at np 2, P (512) prompts 256/256, fp8 against bf16 (goal >= 0.9x);
#   4. with RSS=1: peak RSS of loading a V3-width FP8 model (init-model --preset v3, 3 layers,
#      16 experts) at np 1 and np 2, against the FP8 bytes of each rank's share.
# Usage: [OFFLINE=1] [RSS=1] [DECODE=0] perf/fp8_bench.sh     (work dir: $DPEP_BENCH_DIR or /tmp/dpep-fp8)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${DPEP_BENCH_DIR:-/tmp/dpep-fp8}; mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1)
cmake --build build -j2 --target dpep bench_packed_gemm >/dev/null
DPEP=build/dpep
echo "machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores, $(date -u)," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
[[ ${DECODE:-1} == 1 ]] && OMP_NUM_THREADS=1 build/perf/bench_packed_gemm
for dt in fp8 bf16; do
  [[ -f $W/bench-$dt.h5 ]] || $DPEP init-model --preset bench --seed 1 --dtype $dt --out "$W/bench-$dt.h5" --quiet
done

decode() {  # dtype round
  $DPEP offline --model "$W/bench-$1.h5" --num-prompts 1 --random-input-len 256 --random-output-len 128 \
    --random-range-ratio 1 --threads 2 --kv-cache-tokens 4096 --log-dir "$W/logs-decode" \
    --result-file "$W/decode-$1-$2.json" >/dev/null 2>&1
}
if [[ ${DECODE:-1} == 1 ]]; then
for round in 1 2; do decode fp8 $round; decode bf16 $round; done
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
best, bytes_ = {}, {}
for dt in ("fp8", "bf16"):
    runs = [json.load(open(f"{w}/decode-{dt}-{r}.json")) for r in (1, 2)]
    best[dt] = max(1000.0 / r["mean_tpot_ms"] for r in runs)
    bytes_[dt] = runs[0]["weight_bytes_per_token"]
    print(f"{dt}: one-sequence decode {best[dt]:.1f} tok/s (best of 2; runs "
          + ", ".join(f"{1000.0 / r['mean_tpot_ms']:.1f}" for r in runs)
          + f"), {bytes_[dt] / 1e6:.1f} MB of weights per token, matmul {runs[0]['matmul_dtype']}")
ratio = bytes_["bf16"] / bytes_["fp8"]
speed = best["fp8"] / best["bf16"]
print(f"weight bytes per token bf16/fp8 = {ratio:.2f}; decode speedup fp8/bf16 = {speed:.2f}x "
      f"= {speed / ratio:.2f} of the ratio (goal >= 0.85)")
PY
fi

if [[ ${OFFLINE:-0} == 1 ]]; then
  P=${P:-512}
  for dt in fp8 bf16; do
    "${MPIRUN[@]}" -np 2 $DPEP offline --model "$W/bench-$dt.h5" --num-prompts $P --random-input-len 256 \
      --random-output-len 256 --random-range-ratio 1 --max-batch-size 256 --kv-cache-tokens 135000 \
      --log-dir "$W/logs-offline-$dt" --result-file "$W/offline-$dt.json" >/dev/null 2>&1
  done
  python3 - "$W" "$P" <<'PY'
import json, sys
w = sys.argv[1]
r = {dt: json.load(open(f"{w}/offline-{dt}.json")) for dt in ("fp8", "bf16")}
for dt in r:
    print(f"offline np 2, {sys.argv[2]} x 256/256, {dt}: {r[dt]['output_throughput']:.1f} output tok/s")
print(f"offline fp8/bf16 = {r['fp8']['output_throughput'] / r['bf16']['output_throughput']:.2f} (goal >= 0.9)")
PY
fi

if [[ ${RSS:-0} == 1 ]]; then
  V3=(--preset v3 --set num_hidden_layers=3 --set first_k_dense_replace=1 --set n_routed_experts=16
      --set num_nextn_predict_layers=0)
  [[ -f $W/v3-fp8.h5 ]] || $DPEP init-model "${V3[@]}" --seed 1 --dtype fp8 --out "$W/v3-fp8.h5" --quiet
  echo "V3-width FP8 model: $(du -b "$W/v3-fp8.h5" | cut -f1) bytes"
  for np in 1 2; do
    rm -f "$W"/rss-$np-*.txt
    "${MPIRUN[@]}" -np $np sh -c "/usr/bin/time -f %M -o $W/rss-$np-\$OMPI_COMM_WORLD_RANK.txt \
      $DPEP generate --model $W/v3-fp8.h5 --prompt-ids 1,2,3 --max-tokens 2 --kv-cache-tokens 1024 \
      --log-dir $W/logs-rss-$np" >/dev/null 2>&1
    for f in "$W"/rss-$np-*.txt; do
      r=${f##*-}; r=${r%.txt}
      held=$(sed -n 's/.* \([0-9.]*\) MB of weights on this rank.*/\1/p' "$(printf "%s/logs-rss-%s/rank-%04d.log" "$W" $np "$r")")
      echo "np $np rank $r: peak RSS $(awk "BEGIN {printf \"%.2f\", $(tail -1 "$f") / 1048576}") GiB," \
           "weights held $(awk "BEGIN {printf \"%.2f\", $held / 1073.741824}") GiB"
    done
  done
fi
echo "(shared machine: other jobs ran at the same time; compare ratios within this run only)"
