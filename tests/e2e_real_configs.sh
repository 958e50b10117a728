#!/bin/bash
# The config.json files of the DeepSeek-V3 and R1 releases (tests/data/configs): `dpep plan --hf`
# on a folder holding only that file plans the FP8 release (the same weights as the v3 preset in
# fp8); a tiny FP8 checkpoint with an MTP layer whose config.json carries every field of the
# release converts (MTP kept under mtp/, said so) and runs exactly like the same checkpoint with
# its own config.json, and each rank says the MTP layer is not loaded.
# $1 = dpep binary, $2 = tests/data.
set -euo pipefail
DPEP=$1
DATA=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

flags=(--ranks 8 --kv-cache-tokens 4096 --threads 4 --json)
"$DPEP" plan --preset v3 --dtype fp8 "${flags[@]}" > "$TMP/preset.json"
for rel in v3 r1; do
  mkdir "$TMP/$rel"
  cp "$DATA/configs/deepseek-$rel-config.json" "$TMP/$rel/config.json"
  "$DPEP" plan --hf "$TMP/$rel" "${flags[@]}" > "$TMP/$rel.json"
  for k in weights weights_fp8 fp8_scales weights_bf16 experts replicated kv_bytes peak; do
    a=$(json_field "$TMP/preset.json" $k); b=$(json_field "$TMP/$rel.json" $k)
    [ "$a" = "$b" ] || { echo "$rel plan $k: $b, v3 fp8 preset $a"; exit 1; }
  done
  "$DPEP" plan --hf "$TMP/$rel" --ranks 16 > "$TMP/$rel.txt"
  grep -q "1 MTP layer(s) not loaded, not counted" "$TMP/$rel.txt" || { cat "$TMP/$rel.txt"; exit 1; }
  grep -q "16 routed experts per layer on this rank of 16" "$TMP/$rel.txt" || { cat "$TMP/$rel.txt"; exit 1; }
done
# Per rank at 8 ranks: about 97 GB of fp8 (replicated layers and 32 experts per layer).
fp8=$(json_field "$TMP/v3.json" weights_fp8)
[ "$fp8" -gt 90000000000 ] && [ "$fp8" -lt 100000000000 ] || { echo "fp8 bytes $fp8"; exit 1; }

# A tiny FP8 checkpoint with its MTP layer, once with its own config.json and once with the
# release's config.json carrying the tiny sizes.
"$DPEP" init-model --preset tiny --set num_nextn_predict_layers=1 --seed 4 --dtype fp8 \
  --hf-out "$TMP/hf" --quiet 2> /dev/null
cp -r "$TMP/hf" "$TMP/hf-release"
python3 - "$DATA/configs/deepseek-v3-config.json" "$TMP/hf/config.json" "$TMP/hf-release/config.json" <<'PY'
import json, sys
release, tiny = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k, v in tiny.items():
    if k not in ("quantization_config", "torch_dtype", "architectures", "model_type"):
        release[k] = v
json.dump(release, open(sys.argv[3], "w"), indent=2)
PY
grep -q '"aux_loss_alpha"' "$TMP/hf-release/config.json"
for d in hf hf-release; do
  "$DPEP" convert --hf "$TMP/$d" --out "$TMP/$d.h5" --quiet 2> "$TMP/$d.err" || { cat "$TMP/$d.err"; exit 1; }
  grep -q "MTP: kept 1 layer(s) of multi-token prediction (checkpoint layers 3.." "$TMP/$d.err" ||
    { cat "$TMP/$d.err"; exit 1; }
  "$DPEP" generate --model "$TMP/$d.h5" --prompt-ids 5,77,301 --max-tokens 4 \
    --log-dir "$TMP/logs-$d" > "$TMP/$d.out" 2> /dev/null
  grep -q "holds 1 MTP (multi-token prediction) layer(s) under mtp/: not loaded" \
    "$TMP/logs-$d/rank-0000.log" || { cat "$TMP/logs-$d/rank-0000.log"; exit 1; }
done
cmp "$TMP/hf.out" "$TMP/hf-release.out" || { cat "$TMP/hf.out" "$TMP/hf-release.out"; exit 1; }
grep -q "^output_ids: " "$TMP/hf.out"
echo "e2e_real_configs: ok"
