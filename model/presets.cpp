// The built-in model shapes, one row each. `v3` is the real DeepSeek-V3/R1 config (config.json
// of the release); the others are narrower models of the same architecture for tests and
// benchmarks. All use YaRN RoPE (beta 32/1, mscale 1) and sigmoid noaux_tc routing, as V3.
#include <fmt/format.h>

#include <stdexcept>

#include "model/config.h"

namespace dpep {
namespace {

struct PresetRow {
  const char* name;
  int64_t vocab, hidden, dense_inter, expert_inter, layers, first_dense, heads;
  int64_t q_lora, kv_lora, qk_nope, qk_rope, v_head;
  int64_t experts, topk, shared, n_group, topk_group, max_pos, nextn;
  double routed_scale, yarn_factor;
  int64_t yarn_original_max_pos;
};

constexpr PresetRow kPresets[] = {
    // name   vocab   hidden dense  expert layers 1st-dense heads q_lora kv_lora nope rope v
    //        experts topk shared groups topk-groups max_pos nextn  routed-scale
    //        yarn-factor/original
    {"v3", 129280, 7168, 18432, 2048, 61,     3, 128, 1536, 512, 128, 64, 128,  //
     256,  8,      1,    8,     4,    163840, 1, 2.5, 40,   4096},
    {"bench", 16384, 1024, 2816, 256, 8,     1, 16,  384, 256, 64, 32, 64,  //
     64,      6,     1,    8,    4,   16384, 0, 2.5, 40,  4096},
    {"small", 4096, 512, 1408, 128, 4,    1, 8,   192, 128, 32, 16, 32,  //
     16,      4,    1,   4,    2,   8192, 0, 2.5, 40,  4096},
    {"tiny", 512, 64, 128, 32, 3,    1, 4,   32, 16, 16, 8, 16,  //
     8,      2,   1,  2,   1,  2048, 0, 1.5, 2,  512},
};

}  // namespace

ModelConfig ModelConfig::preset(const std::string& name) {
  const PresetRow* row = nullptr;
  std::string known;
  for (const auto& r : kPresets) {
    if (name == r.name) row = &r;
    known += known.empty() ? r.name : std::string(", ") + r.name;
  }
  if (!row)
    throw std::invalid_argument(fmt::format("unknown preset '{}' (known: {})", name, known));
  ModelConfig c;
  c.vocab_size = row->vocab;
  c.hidden_size = row->hidden;
  c.intermediate_size = row->dense_inter;
  c.moe_intermediate_size = row->expert_inter;
  c.num_hidden_layers = row->layers;
  c.first_k_dense_replace = row->first_dense;
  c.num_attention_heads = row->heads;
  c.q_lora_rank = row->q_lora;
  c.kv_lora_rank = row->kv_lora;
  c.qk_nope_head_dim = row->qk_nope;
  c.qk_rope_head_dim = row->qk_rope;
  c.v_head_dim = row->v_head;
  c.n_routed_experts = row->experts;
  c.num_experts_per_tok = row->topk;
  c.n_shared_experts = row->shared;
  c.n_group = row->n_group;
  c.topk_group = row->topk_group;
  c.max_position_embeddings = row->max_pos;
  c.num_nextn_predict_layers = row->nextn;
  c.routed_scaling_factor = row->routed_scale;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  c.rope_scaling.type = RopeType::Yarn;
  c.rope_scaling.factor = row->yarn_factor;
  c.rope_scaling.original_max_position_embeddings = row->yarn_original_max_pos;
  c.rope_scaling.beta_fast = 32;
  c.rope_scaling.beta_slow = 1;
  c.rope_scaling.mscale = 1;
  c.rope_scaling.mscale_all_dim = 1;
  return c;
}

}  // namespace dpep
