#include "model/config.h"

#include <fmt/format.h>

#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <type_traits>

namespace dpep {
namespace {

// Each field is named once here; attributes, --set and JSON all go through this list.
template <typename C, typename F>
void for_each_field(C& c, F&& f) {
  f("vocab_size", c.vocab_size);
  f("hidden_size", c.hidden_size);
  f("intermediate_size", c.intermediate_size);
  f("moe_intermediate_size", c.moe_intermediate_size);
  f("num_hidden_layers", c.num_hidden_layers);
  f("first_k_dense_replace", c.first_k_dense_replace);
  f("moe_layer_freq", c.moe_layer_freq);
  f("num_attention_heads", c.num_attention_heads);
  f("q_lora_rank", c.q_lora_rank);
  f("kv_lora_rank", c.kv_lora_rank);
  f("qk_nope_head_dim", c.qk_nope_head_dim);
  f("qk_rope_head_dim", c.qk_rope_head_dim);
  f("v_head_dim", c.v_head_dim);
  f("n_routed_experts", c.n_routed_experts);
  f("num_experts_per_tok", c.num_experts_per_tok);
  f("n_shared_experts", c.n_shared_experts);
  f("n_group", c.n_group);
  f("topk_group", c.topk_group);
  f("routed_scaling_factor", c.routed_scaling_factor);
  f("norm_topk_prob", c.norm_topk_prob);
  f("scoring_func", c.scoring_func);
  f("topk_method", c.topk_method);
  f("rms_norm_eps", c.rms_norm_eps);
  f("rope_theta", c.rope_theta);
  f("rope_scaling.type", c.rope_scaling.type);
  f("rope_scaling.factor", c.rope_scaling.factor);
  f("rope_scaling.original_max_position_embeddings",
    c.rope_scaling.original_max_position_embeddings);
  f("rope_scaling.beta_fast", c.rope_scaling.beta_fast);
  f("rope_scaling.beta_slow", c.rope_scaling.beta_slow);
  f("rope_scaling.mscale", c.rope_scaling.mscale);
  f("rope_scaling.mscale_all_dim", c.rope_scaling.mscale_all_dim);
  f("max_position_embeddings", c.max_position_embeddings);
  f("bos_token_id", c.bos_token_id);
  f("eos_token_id", c.eos_token_id);
  f("num_nextn_predict_layers", c.num_nextn_predict_layers);
  f("tie_word_embeddings", c.tie_word_embeddings);
}

std::string to_string_value(int64_t v) {
  return std::to_string(v);
}
std::string to_string_value(double v) {
  return fmt::format("{}", v);
}
std::string to_string_value(bool v) {
  return v ? "true" : "false";
}
template <typename E>
requires std::is_enum_v<E> std::string to_string_value(E v) {
  return to_string(v);
}

void parse_value(const std::string& key, const std::string& s, int64_t& out) {
  try {
    size_t n = 0;
    long long v = std::stoll(s, &n);
    if (n != s.size()) throw std::invalid_argument("trailing");
    out = v;
  } catch (const std::exception&) {
    throw std::invalid_argument(
        fmt::format("config field '{}' needs an integer, got '{}'", key, s));
  }
}
void parse_value(const std::string& key, const std::string& s, double& out) {
  // strtod, not stod: a subnormal such as 5e-324 (written by to_string_value) must read back.
  char* end = nullptr;
  const double v = s.empty() || std::isspace(static_cast<unsigned char>(s[0]))
                       ? 0
                       : std::strtod(s.c_str(), &end);
  if (!end || end != s.c_str() + s.size())
    throw std::invalid_argument(fmt::format("config field '{}' needs a number, got '{}'", key, s));
  out = v;
}
void parse_value(const std::string& key, const std::string& s, bool& out) {
  if (s == "true" || s == "1")
    out = true;
  else if (s == "false" || s == "0")
    out = false;
  else
    throw std::invalid_argument(
        fmt::format("config field '{}' needs true/false, got '{}'", key, s));
}
void parse_value(const std::string& key, const std::string& s, RopeType& out) {
  out = rope_type_from_name(s, key);
}
void parse_value(const std::string& key, const std::string& s, ScoringFunc& out) {
  out = scoring_func_from_name(s, key);
}
void parse_value(const std::string& key, const std::string& s, TopkMethod& out) {
  out = topk_method_from_name(s, key);
}

// Name tables of the enum fields: {enum value, name in config.json}; the first name is canonical.
template <typename E>
struct EnumName {
  E value;
  const char* name;
};
constexpr EnumName<RopeType> kRopeTypes[] = {
    {RopeType::None, "none"}, {RopeType::None, "default"}, {RopeType::Yarn, "yarn"}};
constexpr EnumName<ScoringFunc> kScoringFuncs[] = {{ScoringFunc::Sigmoid, "sigmoid"},
                                                   {ScoringFunc::Softmax, "softmax"}};
constexpr EnumName<TopkMethod> kTopkMethods[] = {
    {TopkMethod::NoauxTc, "noaux_tc"},
    {TopkMethod::Greedy, "greedy"},
    {TopkMethod::GroupLimitedGreedy, "group_limited_greedy"}};

template <typename E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E v) {
  for (const auto& e : table)
    if (e.value == v) return e.name;
  return "?";
}
template <typename E, size_t N>
E enum_from_name(const EnumName<E> (&table)[N], const std::string& s, const std::string& what) {
  std::string names;
  for (const auto& e : table) {
    if (s == e.name) return e.value;
    names += names.empty() ? e.name : std::string(", ") + e.name;
  }
  throw std::invalid_argument(fmt::format("{} must be one of {}, got '{}'", what, names, s));
}

// An integer field of config.json: integers, or floats with an integral value (4096.0).
int64_t json_int(const nlohmann::json& v, const char* key) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double x = v.get<double>();
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9e15)
      return static_cast<int64_t>(x);
  }
  throw std::invalid_argument(
      fmt::format("config.json: '{}' must be an integer, got {}", key, v.dump()));
}

}  // namespace

const char* to_string(RopeType v) {
  return enum_name(kRopeTypes, v);
}
const char* to_string(ScoringFunc v) {
  return enum_name(kScoringFuncs, v);
}
const char* to_string(TopkMethod v) {
  return enum_name(kTopkMethods, v);
}
RopeType rope_type_from_name(const std::string& s, const std::string& what) {
  return enum_from_name(kRopeTypes, s, what);
}
ScoringFunc scoring_func_from_name(const std::string& s, const std::string& what) {
  return enum_from_name(kScoringFuncs, s, what);
}
TopkMethod topk_method_from_name(const std::string& s, const std::string& what) {
  return enum_from_name(kTopkMethods, s, what);
}

namespace {

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

double ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (rope_scaling.type == RopeType::Yarn && rope_scaling.factor > 1.0) {
    double m = yarn_get_mscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
    s *= m * m;
  }
  return s;
}

std::map<std::string, std::string> ModelConfig::to_fields() const {
  std::map<std::string, std::string> out;
  for_each_field(*this, [&](const char* k, const auto& v) { out[k] = to_string_value(v); });
  return out;
}

std::vector<std::string> ModelConfig::field_names() {
  std::vector<std::string> out;
  ModelConfig c;
  for_each_field(c, [&](const char* k, auto&) { out.push_back(k); });
  return out;
}

std::map<std::string, ModelConfig::FieldKind> ModelConfig::field_kinds() {
  std::map<std::string, FieldKind> out;
  ModelConfig c;
  for_each_field(c, [&](const char* k, auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, int64_t>)
      out[k] = FieldKind::Int;
    else if constexpr (std::is_same_v<T, double>)
      out[k] = FieldKind::Real;
    else if constexpr (std::is_same_v<T, bool>)
      out[k] = FieldKind::Bool;
    else
      out[k] = FieldKind::Name;
  });
  return out;
}

void ModelConfig::set_field(const std::string& key, const std::string& value) {
  bool found = false;
  for_each_field(*this, [&](const char* k, auto& v) {
    if (key == k) {
      parse_value(key, value, v);
      found = true;
    }
  });
  if (!found) throw std::invalid_argument(fmt::format("unknown config field '{}'", key));
}

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("invalid model config: " + what);
  };
  // Sizes fit in int (so sums such as qk_head_dim() cannot overflow); reals are finite.
  for_each_field(*this, [&](const char* k, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, int64_t>)
      need(v >= -INT32_MAX && v <= INT32_MAX, fmt::format("{} = {} is out of range", k, v));
    else if constexpr (std::is_same_v<T, double>)
      need(std::isfinite(v), fmt::format("{} must be finite", k));
  });
  need(vocab_size > 0, "vocab_size must be > 0");
  need(hidden_size > 0, "hidden_size must be > 0");
  need(num_hidden_layers > 0, "num_hidden_layers must be > 0");
  need(num_attention_heads > 0, "num_attention_heads must be > 0");
  need(q_lora_rank >= 0, "q_lora_rank must be >= 0 (0 = none)");
  need(kv_lora_rank > 0, "kv_lora_rank must be > 0");
  need(qk_nope_head_dim > 0, "qk_nope_head_dim must be > 0");
  need(qk_rope_head_dim > 0 && qk_rope_head_dim % 2 == 0, "qk_rope_head_dim must be even and > 0");
  need(v_head_dim > 0, "v_head_dim must be > 0");
  need(first_k_dense_replace >= 0, "first_k_dense_replace must be >= 0");
  need(moe_layer_freq >= 1, "moe_layer_freq must be >= 1");
  bool any_dense = first_k_dense_replace > 0 || n_routed_experts == 0;
  need(!any_dense || intermediate_size > 0, "intermediate_size must be > 0 for dense layers");
  if (n_routed_experts > 0) {
    need(moe_intermediate_size > 0, "moe_intermediate_size must be > 0");
    need(num_experts_per_tok > 0 && num_experts_per_tok <= n_routed_experts,
         "num_experts_per_tok must be in [1, n_routed_experts]");
    need(n_group >= 1 && n_routed_experts % n_group == 0, "n_group must divide n_routed_experts");
    need(topk_group >= 1 && topk_group <= n_group, "topk_group must be in [1, n_group]");
    need(n_shared_experts >= 0, "n_shared_experts must be >= 0");
    need(n_routed_experts / n_group >= 2 || topk_method != TopkMethod::NoauxTc,
         "noaux_tc needs at least 2 experts per group");
    need(topk_group * (n_routed_experts / n_group) >= num_experts_per_tok,
         "topk_group groups must hold at least num_experts_per_tok experts");
  }
  need(rms_norm_eps > 0, "rms_norm_eps must be > 0");
  need(rope_theta > 0, "rope_theta must be > 0");
  if (rope_scaling.type == RopeType::Yarn) {
    need(rope_scaling.factor > 0, "rope_scaling.factor must be > 0");
    need(rope_scaling.original_max_position_embeddings > 0,
         "rope_scaling.original_max_position_embeddings must be > 0");
  }
  need(max_position_embeddings > 0, "max_position_embeddings must be > 0");
  need(eos_token_id >= 0 && eos_token_id < vocab_size, "eos_token_id must be a token id");
  need(bos_token_id >= 0 && bos_token_id < vocab_size, "bos_token_id must be a token id");
  need(std::isfinite(softmax_scale()),
       "rope_scaling factor and mscale_all_dim give an infinite softmax scale");
}

ModelConfig ModelConfig::from_hf_json(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(fmt::format("config.json is not valid JSON: {}", e.what()));
  }
  ModelConfig c;
  auto get_int = [&](const char* k, int64_t& v, bool required) {
    if (!j.contains(k) || j[k].is_null()) {
      if (required) throw std::invalid_argument(fmt::format("config.json lacks '{}'", k));
      return;
    }
    v = json_int(j[k], k);
  };
  auto get_num = [&](const nlohmann::json& o, const char* k, double& v) {
    if (o.contains(k) && o[k].is_number()) v = o[k].get<double>();
  };
  try {
    get_int("vocab_size", c.vocab_size, true);
    get_int("hidden_size", c.hidden_size, true);
    get_int("intermediate_size", c.intermediate_size, false);
    get_int("moe_intermediate_size", c.moe_intermediate_size, false);
    get_int("num_hidden_layers", c.num_hidden_layers, true);
    get_int("first_k_dense_replace", c.first_k_dense_replace, false);
    get_int("moe_layer_freq", c.moe_layer_freq, false);
    get_int("num_attention_heads", c.num_attention_heads, true);
    if (j.contains("q_lora_rank") && !j["q_lora_rank"].is_null())
      c.q_lora_rank = json_int(j["q_lora_rank"], "q_lora_rank");
    else
      c.q_lora_rank = 0;
    get_int("kv_lora_rank", c.kv_lora_rank, true);
    get_int("qk_nope_head_dim", c.qk_nope_head_dim, true);
    get_int("qk_rope_head_dim", c.qk_rope_head_dim, true);
    get_int("v_head_dim", c.v_head_dim, true);
    get_int("n_routed_experts", c.n_routed_experts, false);
    get_int("num_experts_per_tok", c.num_experts_per_tok, false);
    get_int("n_shared_experts", c.n_shared_experts, false);
    get_int("n_group", c.n_group, false);
    get_int("topk_group", c.topk_group, false);
    get_num(j, "routed_scaling_factor", c.routed_scaling_factor);
    if (j.contains("norm_topk_prob") && j["norm_topk_prob"].is_boolean())
      c.norm_topk_prob = j["norm_topk_prob"].get<bool>();
    if (j.contains("scoring_func") && j["scoring_func"].is_string())
      c.scoring_func =
          scoring_func_from_name(j["scoring_func"].get<std::string>(), "config.json: scoring_func");
    if (j.contains("topk_method") && j["topk_method"].is_string())
      c.topk_method =
          topk_method_from_name(j["topk_method"].get<std::string>(), "config.json: topk_method");
    get_num(j, "rms_norm_eps", c.rms_norm_eps);
    get_num(j, "rope_theta", c.rope_theta);
    get_int("max_position_embeddings", c.max_position_embeddings, false);
    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
      c.bos_token_id = j["bos_token_id"].get<int64_t>();
    if (j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_number_integer())
        c.eos_token_id = e.get<int64_t>();
      else if (e.is_array() && !e.empty())
        c.eos_token_id = json_int(e[0], "eos_token_id");
    }
    get_int("num_nextn_predict_layers", c.num_nextn_predict_layers, false);
    if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean())
      c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
    // Newer transformers write rope_parameters instead of rope_scaling.
    const nlohmann::json* rs = nullptr;
    if (j.contains("rope_scaling") && j["rope_scaling"].is_object())
      rs = &j["rope_scaling"];
    else if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
      rs = &j["rope_parameters"];
    if (rs) {
      const auto& r = *rs;
      std::string type = r.value("rope_type", r.value("type", std::string("default")));
      if (r.contains("rope_theta") && r["rope_theta"].is_number())
        c.rope_theta = r["rope_theta"].get<double>();
      if (type == "yarn") {
        c.rope_scaling.type = RopeType::Yarn;
        get_num(r, "factor", c.rope_scaling.factor);
        if (r.contains("original_max_position_embeddings"))
          c.rope_scaling.original_max_position_embeddings =
              json_int(r["original_max_position_embeddings"], "original_max_position_embeddings");
        get_num(r, "beta_fast", c.rope_scaling.beta_fast);
        get_num(r, "beta_slow", c.rope_scaling.beta_slow);
        get_num(r, "mscale", c.rope_scaling.mscale);
        get_num(r, "mscale_all_dim", c.rope_scaling.mscale_all_dim);
      } else if (type != "default" && type != "none") {
        throw std::invalid_argument(fmt::format("unsupported rope scaling type '{}'", type));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(
        fmt::format("config.json has a field of the wrong type: {}", e.what()));
  }
  c.validate();
  return c;
}

}  // namespace dpep
