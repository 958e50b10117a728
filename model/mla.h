// Multi-head latent attention in the absorbed form: only the normalised latent c [kv_lora] and
// the roped key k_pe [rope] are cached per token; kv_b is split into W_uk and W_uv and folded
// into the query and the output. Used for prefill and decode alike.
#pragma once
#include <vector>

#include "model/batch.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/rope.h"

namespace dpep {

struct MlaWeights {
  Linear q_a_proj;                    // [q_lora, H]          (q_lora_rank > 0)
  std::vector<float> q_a_layernorm;   // [q_lora]
  Linear q_b_proj;                    // [heads*(nope+rope), q_lora]
  Linear q_proj;                      // [heads*(nope+rope), H]  (q_lora_rank == 0)
  Linear kv_a_proj_with_mqa;          // [kv_lora + rope, H]
  std::vector<float> kv_a_layernorm;  // [kv_lora]
  Linear kv_b_proj;                   // [heads*(nope+v), kv_lora]: rows h*(nope+v)+d, d<nope = W_uk
  Linear o_proj;                      // [H, heads*v]
  // bf16 mode only: kv_b split per head for the absorbed products, packed for packed_gemm
  // (kv_b_proj itself is then released).
  std::vector<Linear> w_uk_scaled;  // [heads] of [kv_lora, nope] = softmax_scale * W_uk[h]^T
  std::vector<Linear> w_uv;         // [heads] of [v, kv_lora]
};

// Builds w_uk_scaled and w_uv from kv_b_proj (any stored dtype, one head at a time) and packs
// them, and every projection, for the bf16 kernel.
void pack_mla_bf16(const ModelConfig& c, MlaWeights& w);

// x: [T, H] (already input-normed). out: [T, H]. Writes this batch's latents into `kv` first.
void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int layer,
                 const float* x, const ForwardBatch& batch, const KvCacheView& kv, float* out);

}  // namespace dpep
