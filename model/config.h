// ModelConfig: every DeepSeek-V3 config field dpep uses, named as in Hugging Face config.json.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dpep {

// String-valued fields of config.json as enums; each name table lives once in config.cpp.
enum class RopeType { None, Yarn };                             // "none"/"default", "yarn"
enum class ScoringFunc { Sigmoid, Softmax };                    // "sigmoid", "softmax"
enum class TopkMethod { NoauxTc, Greedy, GroupLimitedGreedy };  // as named in config.json
const char* to_string(RopeType v);
const char* to_string(ScoringFunc v);
const char* to_string(TopkMethod v);
// Each throws std::invalid_argument naming `what` and the accepted names.
RopeType rope_type_from_name(const std::string& s, const std::string& what = "rope_scaling.type");
ScoringFunc scoring_func_from_name(const std::string& s, const std::string& what = "scoring_func");
TopkMethod topk_method_from_name(const std::string& s, const std::string& what = "topk_method");

struct RopeScaling {
  RopeType type = RopeType::None;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 1.0;
};

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP width
  int64_t moe_intermediate_size = 0;  // width of each routed / shared expert
  int64_t num_hidden_layers = 0;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t num_attention_heads = 0;
  int64_t q_lora_rank = 0;  // 0 = null in config.json: plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_shared_experts = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = true;
  ScoringFunc scoring_func = ScoringFunc::Sigmoid;
  TopkMethod topk_method = TopkMethod::NoauxTc;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 4096;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t num_nextn_predict_layers = 0;
  bool tie_word_embeddings = false;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace &&
           (moe_layer_freq <= 1 || layer % moe_layer_freq == 0);
  }
  // softmax scale including YaRN's mscale^2 (see docs: m = 0.1*mscale_all_dim*ln(factor)+1).
  double softmax_scale() const;

  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;

  // Integer/float/bool/string view of every field, for HDF5 attributes and --set overrides.
  std::map<std::string, std::string> to_fields() const;
  void set_field(const std::string& key, const std::string& value);  // throws on unknown key
  static std::vector<std::string> field_names();
  // How each field is stored (HDF5 attribute type): Name = an enum field, stored by its name.
  enum class FieldKind { Int, Real, Bool, Name };
  static std::map<std::string, FieldKind> field_kinds();

  static ModelConfig from_hf_json(const std::string& json_text);  // config.json of a HF checkpoint
  static ModelConfig preset(const std::string& name);             // tiny, small, bench, v3
};

}  // namespace dpep
