// Multi-head latent attention in the absorbed form: only the normalised latent c [kv_lora] and
// the roped key k_pe [rope] are cached per token; kv_b is split into W_uk and W_uv and folded
// into the query and the output. Used for prefill and decode alike.
#pragma once
#include <vector>

#include "model/batch.h"
#include "model/config.h"
#include "model/linear.h"
#include "model/ops/attention_absorb.h"
#include "model/rope.h"
#include "model/run_state.h"

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
  // bf16 mode, when q_lora allows it: q_a_proj's rows then kv_a_proj_with_mqa's in one matrix
  // (both then empty), one product for the two projections of x.
  Linear qkv_a;  // [q_lora + kv_lora + rope, H]
  // bf16 mode only: kv_b split per head for the absorbed products (model/ops/attention_absorb.h).
  HeadProjBf16 uk_absorb;  // per head [nope -> kv_lora]: softmax_scale * W_uk[h]
  HeadProjBf16 uv_absorb;  // per head [kv_lora -> v]: W_uv[h]^T
};

// Builds uk_absorb and uv_absorb from kv_b_proj (float32) and packs them, and every projection, as
// bf16.
void pack_mla_bf16(const ModelConfig& c, MlaWeights& w);

// x: [T, H] (already input-normed). out: [T, H]. Writes this batch's latents into `kv` first.
// Every intermediate lives in `rs` (sized for the OpenMP team: RunState::fit_threads).
void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int layer,
                 const float* x, const ForwardBatch& batch, const KvCacheView& kv, float* out,
                 RunState::Mla& rs);

}  // namespace dpep
