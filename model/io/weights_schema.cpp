#include "model/io/weights_schema.h"

#include <fmt/format.h>

namespace dpep {

std::vector<TensorSpec> model_tensor_specs(const ModelConfig& c) {
  std::vector<TensorSpec> s;
  const int64_t H = c.hidden_size, nh = c.num_attention_heads;
  auto add = [&](std::string name, std::string hf, std::vector<int64_t> shape, TensorKind k) {
    s.push_back(TensorSpec{std::move(name), std::move(hf), std::move(shape), k});
  };
  add("embed_tokens", "model.embed_tokens.weight", {c.vocab_size, H}, TensorKind::Embedding);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("layers/{}/", l), hp = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm", hp + "input_layernorm.weight", {H}, TensorKind::Vector);
    add(p + "post_attention_layernorm", hp + "post_attention_layernorm.weight", {H},
        TensorKind::Vector);
    const std::string a = p + "attn/", ha = hp + "self_attn.";
    if (c.q_lora_rank > 0) {
      add(a + "q_a_proj", ha + "q_a_proj.weight", {c.q_lora_rank, H}, TensorKind::Matrix);
      add(a + "q_a_layernorm", ha + "q_a_layernorm.weight", {c.q_lora_rank}, TensorKind::Vector);
      add(a + "q_b_proj", ha + "q_b_proj.weight", {nh * c.qk_head_dim(), c.q_lora_rank},
          TensorKind::Matrix);
    } else {
      add(a + "q_proj", ha + "q_proj.weight", {nh * c.qk_head_dim(), H}, TensorKind::Matrix);
    }
    add(a + "kv_a_proj_with_mqa", ha + "kv_a_proj_with_mqa.weight",
        {c.kv_lora_rank + c.qk_rope_head_dim, H}, TensorKind::Matrix);
    add(a + "kv_a_layernorm", ha + "kv_a_layernorm.weight", {c.kv_lora_rank}, TensorKind::Vector);
    add(a + "kv_b_proj", ha + "kv_b_proj.weight",
        {nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, TensorKind::Matrix);
    add(a + "o_proj", ha + "o_proj.weight", {H, nh * c.v_head_dim}, TensorKind::Matrix);
    if (!c.is_moe_layer(l)) {
      const int64_t I = c.intermediate_size;
      add(p + "mlp/gate_proj", hp + "mlp.gate_proj.weight", {I, H}, TensorKind::Matrix);
      add(p + "mlp/up_proj", hp + "mlp.up_proj.weight", {I, H}, TensorKind::Matrix);
      add(p + "mlp/down_proj", hp + "mlp.down_proj.weight", {H, I}, TensorKind::Matrix);
    } else {
      const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
      add(p + "moe/gate", hp + "mlp.gate.weight", {E, H}, TensorKind::Router);
      if (c.topk_method == TopkMethod::NoauxTc)
        add(p + "moe/e_score_correction_bias", hp + "mlp.gate.e_score_correction_bias", {E},
            TensorKind::Vector);
      add(p + "moe/experts/gate_proj", hp + "mlp.experts.{e}.gate_proj.weight", {E, I, H},
          TensorKind::Experts);
      add(p + "moe/experts/up_proj", hp + "mlp.experts.{e}.up_proj.weight", {E, I, H},
          TensorKind::Experts);
      add(p + "moe/experts/down_proj", hp + "mlp.experts.{e}.down_proj.weight", {E, H, I},
          TensorKind::Experts);
      if (c.n_shared_experts > 0) {
        const int64_t Is = I * c.n_shared_experts;
        add(p + "moe/shared/gate_proj", hp + "mlp.shared_experts.gate_proj.weight", {Is, H},
            TensorKind::Matrix);
        add(p + "moe/shared/up_proj", hp + "mlp.shared_experts.up_proj.weight", {Is, H},
            TensorKind::Matrix);
        add(p + "moe/shared/down_proj", hp + "mlp.shared_experts.down_proj.weight", {H, Is},
            TensorKind::Matrix);
      }
    }
  }
  add("norm", "model.norm.weight", {H}, TensorKind::Vector);
  add("lm_head", c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
      {c.vocab_size, H}, TensorKind::Embedding);
  return s;
}

}  // namespace dpep
