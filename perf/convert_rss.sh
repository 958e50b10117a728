#!/bin/bash
# Peak memory of dpep convert on a generated Hugging Face checkpoint of several GB.
# Goal (issue 2): peak RSS < 2 x largest tensor + process baseline.
#   perf/convert_rss.sh [path/to/dpep] [work dir]     (needs GNU time: apt-get install time)
# Default model: DeepSeek-V3 widths with 2 layers (1 dense, 1 MoE of 16 experts), bf16:
# ~6.7 GB, largest tensors embed_tokens / lm_head [129280, 7168] bf16 = 1.85 GB.
set -euo pipefail
DPEP=${1:-build/dpep}
WORK=${2:-$(mktemp -d /tmp/dpep_convert_rss.XXXX)}
DTYPE=${DTYPE:-bf16}           # checkpoint dtype: bf16, fp32 or fp8
CONVERT_DTYPE=${CONVERT_DTYPE:-keep}
SETS=${SETS:-"--set num_hidden_layers=2 --set first_k_dense_replace=1 --set n_routed_experts=16 --set n_group=8 --set topk_group=4 --set num_nextn_predict_layers=0"}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time (apt-get install time)"; exit 2; }
mkdir -p "$WORK"
HF="$WORK/hf"

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
peak_kb() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)," \
     "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
if [ ! -f "$HF/model.safetensors.index.json" ]; then
  echo "generating checkpoint: dpep init-model --preset v3 $SETS --seed 1 --dtype $DTYPE --hf-out $HF"
  # shellcheck disable=SC2086
  "$DPEP" init-model --preset v3 $SETS --seed 1 --dtype "$DTYPE" --hf-out "$HF" --quiet
fi
CKPT_BYTES=$(du -cb "$HF"/*.safetensors | tail -1 | cut -f1)

# Baseline: the same process converting the smallest possible model (tiny preset).
"$DPEP" init-model --preset tiny --seed 1 --dtype "$DTYPE" --hf-out "$WORK/hf-tiny" --quiet
$TIME -v "$DPEP" convert --hf "$WORK/hf-tiny" --out "$WORK/tiny.h5" --quiet 2> "$WORK/base.log"
BASE_KB=$(peak_kb "$WORK/base.log")

echo "command: dpep convert --hf $HF --out $WORK/out.h5 --dtype $CONVERT_DTYPE --quiet"
$TIME -v "$DPEP" convert --hf "$HF" --out "$WORK/out.h5" --dtype "$CONVERT_DTYPE" --quiet 2> "$WORK/big.log"
PEAK_KB=$(peak_kb "$WORK/big.log")
LARGEST=$(sed -n 's/.*largest tensor \([0-9]*\) bytes.*/\1/p' "$WORK/big.log")
WALL=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/big.log")
LIMIT_KB=$(( 2 * LARGEST / 1024 + BASE_KB ))

printf 'checkpoint:     %s GB (%s)\n' "$(calc "$CKPT_BYTES / 1e9")" "$DTYPE"
printf 'largest tensor: %d bytes (%s MiB)\n' "$LARGEST" "$(calc "$LARGEST / 1048576")"
printf 'baseline RSS:   %d KiB (tiny model)\n' "$BASE_KB"
printf 'peak RSS:       %d KiB = baseline + %s x largest tensor\n' "$PEAK_KB" \
  "$(calc "($PEAK_KB - $BASE_KB) * 1024 / $LARGEST")"
printf 'limit:          %d KiB (2 x largest + baseline)\n' "$LIMIT_KB"
echo "convert wall time: $WALL"
if [ "$PEAK_KB" -lt "$LIMIT_KB" ]; then echo "PASS"; else echo "FAIL"; exit 1; fi
