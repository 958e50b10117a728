#include "model/run_state.h"

#include <omp.h>

#include <algorithm>

namespace dpep {

size_t RunState::attend_row_floats(int kv_lora, int width, int L) {
  return static_cast<size_t>(32) * L + 16 * static_cast<size_t>(kv_lora) + 16 * width + 64;
}

RunState::RunState(const ModelConfig& c, RunStateLimits lim) : lim_(lim) {
  const size_t T = std::max(lim.max_rows, 0), R = std::max(lim.max_logits_rows, 0);
  const size_t H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads;
  const size_t W = c.kv_lora_rank + c.qk_rope_head_dim, kvl = c.kv_lora_rank;
  const size_t K = c.num_experts_per_tok, E = c.n_routed_experts;
  // Capacity only (reserve touches no page): the first step of each size writes its buffers.
  for (auto* v : {&hidden, &normed, &delta}) v->reserve(T * H);
  last.reserve(R * H);
  logits.reserve(R * V);
  size_t mlp_inter = 0;  // widest of the dense MLP and the shared experts
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    mlp_inter =
        std::max<size_t>(mlp_inter, c.is_moe_layer(l) ? c.moe_intermediate_size * c.n_shared_experts
                                                      : c.intermediate_size);
  moe.mlp_scratch.reserve(T * 2 * mlp_inter);
  mla.q.reserve(T * nh * c.qk_head_dim());
  mla.qa.reserve(T * c.q_lora_rank);
  mla.ckv.reserve(T * W);
  mla.qkv.reserve(T * (c.q_lora_rank + W));
  mla.qc.reserve(T * nh * W);
  mla.out_lat.reserve(T * nh * kvl);
  mla.attn.reserve(T * nh * c.v_head_dim);
  if (E > 0) {
    moe.router_logits.reserve(T * E);
    moe.topk_idx.reserve(T * K);
    moe.topk_w.reserve(T * K);
    moe.count.reserve(E);
    moe.offset.reserve(E + 1);
    if (c.n_shared_experts > 0) moe.shared.reserve(T * H);
  }
  if (!lim.f32_cache && lim.max_context > 0)
    mla.bf16.reserve_decode({static_cast<int>(nh), static_cast<int>(W), static_cast<int>(kvl)},
                            lim.max_context);
  if (lim.f32_cache && lim.max_context > 0) {
    attend_row_floats_ = attend_row_floats(kvl, W, lim.max_context);
    attend_pages_ = lim.max_context / 16 + 1;  // pages are at least 16 slots
  }
  fit_threads();
}

void RunState::fit_threads() {
  const size_t n = std::max(omp_get_max_threads(), 1);
  if (mla.threads.size() < n) {
    const size_t old = mla.threads.size();
    mla.threads.resize(n);
    for (size_t i = old; i < n; ++i) {
      mla.threads[i].scratch.reserve(attend_row_floats_);
      mla.threads[i].pages.reserve(attend_pages_);
    }
  }
  if (moe.threads.size() < n) moe.threads.resize(n);
  if (mla.head_gemm.size() < n) mla.head_gemm.resize(n);
}

}  // namespace dpep
