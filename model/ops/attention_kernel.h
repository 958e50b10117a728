// Absorbed-MLA attention of one query row over a paged latent cache, all heads at once.
// Cache pages are blocks of 16 slots, [slot / 16][d][slot % 16] (KvCacheView::offset): 16
// consecutive keys of one latent dimension fill one AVX-512 register and a block of 16 keys is
// one contiguous stream. Every head shares the latent (MQA-like), so each cache value is loaded
// once per row for all heads. page_size must be a multiple of 16.
#pragma once
#include <cstdint>

namespace dpep {

// qc: [heads, W] query (latent part, rope part; already multiplied by the softmax scale).
// pages[i]: base of page i, [page_size / 16, W, 16]. The row sees keys [0, L).
// out_lat: [heads, kv_lora] = softmax(qc . key) . latent.
// scratch: at least 2 * heads * L + 16 * kv_lora floats.
void mla_attend_row(const float* qc, int heads, int W, int kv_lora, const float* const* pages,
                    int page_size, int L, float* out_lat, float* scratch);

// Whether this build has the bf16 cache kernel (model/ops/attention_bf16.h, needs AVX512-BF16).
bool mla_bf16_cache_supported();

// In-place softmax over n values (vectorised exp).
void softmax_fast(float* x, int n);

}  // namespace dpep
