#!/usr/bin/env bash
# The bf16 decode-attention kernel alone against the baseline's (commit e862868: two bf16 copies
# per cache page, AVX512-BF16 dot products), one thread, thread CPU time, in one run: a decode
# row at each context C, bench shape (16 heads, 256 + 32) and DeepSeek-V3's (128, 512 + 64).
# The baseline kernel is compiled from a temporary git worktree with a small harness.
# Usage: perf/attention_vs_baseline.sh [C...]   (default 384 1024 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
CTX=("${@:-384 1024 4096}"); [[ $# -eq 0 ]] && CTX=(384 1024 4096)
W=${DPEP_BENCH_DIR:-/tmp/dpep-attn-vs-base}; mkdir -p "$W"
BASE=e862868
cmake --build build -j2 --target bench_attention >/dev/null
SRC=$W/baseline-$BASE
[[ -d $SRC ]] || git worktree add --detach "$SRC" "$BASE" >/dev/null
cat >"$W/old_decode.cpp" <<'CPP'
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>
#include "model/attention_kernel.h"
#include "model/dtypes.h"
using namespace dpep;
int main(int argc, char** argv) {
  const int C = atoi(argv[1]), heads = atoi(argv[2]), kvl = atoi(argv[3]), rope = atoi(argv[4]);
  const int W = kvl + rope, ps = 64, np = (C + ps - 1) / ps;
  const size_t page_elems = size_t(W + kvl) * ps;  // the baseline's two bf16 copies
  std::vector<uint16_t> data(np * page_elems);
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& x : data) x = f32_to_bf16(u(g));
  std::vector<const uint16_t*> pages(np);
  for (int p = 0; p < np; ++p) pages[p] = data.data() + p * page_elems;
  std::vector<float> q(size_t(heads) * W), out(size_t(heads) * kvl),
      scratch(32 * C + 16 * kvl + 16 * W + 64);
  for (auto& x : q) x = 0.2f * u(g);
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (int i = 0; i < 20; ++i)
      mla_attend_row_bf16(q.data(), heads, W, kvl, pages.data(), ps, C, out.data(), scratch.data());
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    best = std::min(best, (t1.tv_sec - t0.tv_sec + 1e-9 * (t1.tv_nsec - t0.tv_nsec)) / 20);
  }
  printf("  baseline: decode row at context %d: %.1f us, %.1f GFLOP/s\n", C, best * 1e6,
         C * 2.0 * heads * (2.0 * kvl + rope) / best / 1e9);
}
CPP
g++ -O3 -march=native -fopenmp -I"$SRC" "$W/old_decode.cpp" "$SRC/model/attention_kernel.cpp" \
  "$SRC/model/dtypes.cpp" -o "$W/old_decode"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u)"
for shape in "16 256 32" "128 512 64"; do
  read -r H K R <<<"$shape"
  echo "heads $H, kv_lora $K, rope $R (one thread, thread CPU time):"
  for C in "${CTX[@]}"; do
    "$W/old_decode" "$C" "$H" "$K" "$R"
    OMP_NUM_THREADS=1 build/perf/bench_attention 16 "$C" "$H" "$K" "$R" | sed -n 's/^  decode/  this tree: decode/p'
  done
done
