#include "model/io/weights_schema.h"

#include <fmt/format.h>

#include <stdexcept>

namespace dpep {

std::vector<TensorSpec> model_tensor_specs(const ModelConfig& c) {
  std::vector<TensorSpec> s;
  const int64_t H = c.hidden_size, nh = c.num_attention_heads;
  using K = TensorKind;
  using S = TensorSlot;
  int64_t layer = -1;
  auto add = [&](std::string name, std::string hf, std::vector<int64_t> shape, K k, S slot) {
    s.push_back(TensorSpec{std::move(name), std::move(hf), std::move(shape), k, slot, layer});
  };
  add("embed_tokens", "model.embed_tokens.weight", {c.vocab_size, H}, K::Embedding, S::EmbedTokens);
  for (layer = 0; layer < c.num_hidden_layers; ++layer) {
    const int64_t l = layer;
    const std::string p = fmt::format("layers/{}/", l), hp = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm", hp + "input_layernorm.weight", {H}, K::Vector, S::InputLayernorm);
    add(p + "post_attention_layernorm", hp + "post_attention_layernorm.weight", {H}, K::Vector,
        S::PostAttentionLayernorm);
    const std::string a = p + "attn/", ha = hp + "self_attn.";
    if (c.q_lora_rank > 0) {
      add(a + "q_a_proj", ha + "q_a_proj.weight", {c.q_lora_rank, H}, K::Matrix, S::QAProj);
      add(a + "q_a_layernorm", ha + "q_a_layernorm.weight", {c.q_lora_rank}, K::Vector,
          S::QALayernorm);
      add(a + "q_b_proj", ha + "q_b_proj.weight", {nh * c.qk_head_dim(), c.q_lora_rank}, K::Matrix,
          S::QBProj);
    } else {
      add(a + "q_proj", ha + "q_proj.weight", {nh * c.qk_head_dim(), H}, K::Matrix, S::QProj);
    }
    add(a + "kv_a_proj_with_mqa", ha + "kv_a_proj_with_mqa.weight",
        {c.kv_lora_rank + c.qk_rope_head_dim, H}, K::Matrix, S::KvAProjWithMqa);
    add(a + "kv_a_layernorm", ha + "kv_a_layernorm.weight", {c.kv_lora_rank}, K::Vector,
        S::KvALayernorm);
    add(a + "kv_b_proj", ha + "kv_b_proj.weight",
        {nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, K::Matrix, S::KvBProj);
    add(a + "o_proj", ha + "o_proj.weight", {H, nh * c.v_head_dim}, K::Matrix, S::OProj);
    if (!c.is_moe_layer(l)) {
      const int64_t I = c.intermediate_size;
      add(p + "mlp/gate_proj", hp + "mlp.gate_proj.weight", {I, H}, K::Matrix, S::MlpGate);
      add(p + "mlp/up_proj", hp + "mlp.up_proj.weight", {I, H}, K::Matrix, S::MlpUp);
      add(p + "mlp/down_proj", hp + "mlp.down_proj.weight", {H, I}, K::Matrix, S::MlpDown);
    } else {
      const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
      add(p + "moe/gate", hp + "mlp.gate.weight", {E, H}, K::Router, S::Router);
      if (c.topk_method == TopkMethod::NoauxTc)
        add(p + "moe/e_score_correction_bias", hp + "mlp.gate.e_score_correction_bias", {E},
            K::Vector, S::RouterBias);
      add(p + "moe/experts/gate_proj", hp + "mlp.experts.{e}.gate_proj.weight", {E, I, H},
          K::Experts, S::ExpertsGate);
      add(p + "moe/experts/up_proj", hp + "mlp.experts.{e}.up_proj.weight", {E, I, H}, K::Experts,
          S::ExpertsUp);
      add(p + "moe/experts/down_proj", hp + "mlp.experts.{e}.down_proj.weight", {E, H, I},
          K::Experts, S::ExpertsDown);
      if (c.n_shared_experts > 0) {
        const int64_t Is = I * c.n_shared_experts;
        add(p + "moe/shared/gate_proj", hp + "mlp.shared_experts.gate_proj.weight", {Is, H},
            K::Matrix, S::SharedGate);
        add(p + "moe/shared/up_proj", hp + "mlp.shared_experts.up_proj.weight", {Is, H}, K::Matrix,
            S::SharedUp);
        add(p + "moe/shared/down_proj", hp + "mlp.shared_experts.down_proj.weight", {H, Is},
            K::Matrix, S::SharedDown);
      }
    }
  }
  layer = -1;
  add("norm", "model.norm.weight", {H}, K::Vector, S::Norm);
  add("lm_head", c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
      {c.vocab_size, H}, K::Embedding, S::LmHead);
  return s;
}

FusedExperts hf_fused_experts(const TensorSpec& spec) {
  const auto at = spec.hf_name.find("{e}.");
  if (spec.kind != TensorKind::Experts || at == std::string::npos)
    throw std::logic_error("hf_fused_experts: '" + spec.name + "' is not a routed-expert stack");
  const std::string base = spec.hf_name.substr(0, at);
  switch (spec.slot) {
    case TensorSlot::ExpertsGate:
      return {base + "gate_up_proj", 0, 2};
    case TensorSlot::ExpertsUp:
      return {base + "gate_up_proj", 1, 2};
    case TensorSlot::ExpertsDown:
      return {base + "down_proj", 0, 1};
    default:
      throw std::logic_error("hf_fused_experts: '" + spec.name + "' has no fused form");
  }
}

}  // namespace dpep
