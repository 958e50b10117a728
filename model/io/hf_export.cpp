#include "model/io/hf_export.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "comm/clock.h"
#include "model/io/fp8_block.h"
#include "model/io/mtp_schema.h"
#include "model/io/safetensors_writer.h"

namespace dpep {
namespace {

// One checkpoint tensor: a whole spec, one expert of a stacked spec, or an fp8 scale table.
struct Entry {
  StDecl decl;
  const TensorSpec* spec;
  int64_t expert;  // -1 unless an expert
  bool scale;      // the `_scale_inv` of the weight before it
};

StDType st_of(DType t) {
  return t == DType::F32 ? StDType::F32 : t == DType::BF16 ? StDType::BF16 : StDType::F8_E4M3;
}

std::vector<Entry> entries(const std::vector<TensorSpec>& specs, DType dtype) {
  std::vector<Entry> out;
  std::string embed_hf;  // a tied lm_head names the embedding's checkpoint tensor
  for (const auto& spec : specs)
    if (spec.slot == TensorSlot::EmbedTokens) embed_hf = spec.hf_name;
  for (const auto& spec : specs) {
    if (spec.slot == TensorSlot::LmHead && spec.hf_name == embed_hf) continue;  // tied
    const DType dt = init_dtype(spec, dtype);
    const bool stacked = spec.kind == TensorKind::Experts;
    std::vector<int64_t> shape = spec.shape;
    if (stacked) shape.erase(shape.begin());
    for (int64_t e = stacked ? 0 : -1; e < (stacked ? spec.shape[0] : 0); ++e) {
      std::string name = spec.hf_name;
      if (stacked) name.replace(name.find("{e}"), 3, std::to_string(e));
      out.push_back({{name, st_of(dt), shape}, &spec, e, false});
      if (dt == DType::F8E4M3)
        out.push_back(
            {{name + "_scale_inv", StDType::F32, {fp8_blocks(shape[0]), fp8_blocks(shape[1])}},
             &spec,
             e,
             true});
    }
  }
  return out;
}

uint64_t nbytes(const StDecl& d) {
  uint64_t n = st_dtype_bytes(d.dtype);
  for (auto x : d.shape) n *= static_cast<uint64_t>(x);
  return n;
}

}  // namespace

std::string hf_config_json(const ModelConfig& c, DType dtype) {
  nlohmann::ordered_json j;
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = "deepseek_v3";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_attention_heads;
  j["q_lora_rank"] =
      c.q_lora_rank > 0 ? nlohmann::ordered_json(c.q_lora_rank) : nlohmann::ordered_json();
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["n_routed_experts"] = c.n_routed_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["n_shared_experts"] = c.n_shared_experts;
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["scoring_func"] = to_string(c.scoring_func);
  j["topk_method"] = to_string(c.topk_method);
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == RopeType::Yarn)
    j["rope_scaling"] = {
        {"type", "yarn"},
        {"factor", c.rope_scaling.factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings},
        {"beta_fast", c.rope_scaling.beta_fast},
        {"beta_slow", c.rope_scaling.beta_slow},
        {"mscale", c.rope_scaling.mscale},
        {"mscale_all_dim", c.rope_scaling.mscale_all_dim}};
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;  // written after the last layer
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = dtype == DType::F32 ? "float32" : "bfloat16";
  if (dtype == DType::F8E4M3)
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {128, 128}}};
  return j.dump(2);
}

void write_random_hf_checkpoint(const ModelConfig& cfg, const InitOptions& opt,
                                const std::string& dir, uint64_t shard_bytes) {
  cfg.validate();
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "config.json") << hf_config_json(cfg, opt.dtype);
  // The MTP layers as DeepSeek ships them: model.layers.{L+i}.* after the last layer.
  auto specs = model_tensor_specs(cfg);
  for (auto& s : mtp_tensor_specs(cfg)) specs.push_back(std::move(s));
  const auto all = entries(specs, opt.dtype);
  // Shards: consecutive entries up to shard_bytes, a weight and its scales kept together.
  std::vector<std::vector<const Entry*>> shards(1);
  uint64_t cur = 0, total = 0;
  for (const auto& e : all) {
    const uint64_t n = nbytes(e.decl);
    if (!e.scale && cur > 0 && cur + n > shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(&e);
    cur += n;
    total += n;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  const Stopwatch t0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file =
        fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<StDecl> decls;
    for (const auto* e : shards[s]) {
      decls.push_back(e->decl);
      index["weight_map"][e->decl.name] = file;
    }
    SafetensorsWriter w((fs::path(dir) / file).string(), decls);
    for (const auto* e : shards[s]) {
      if (e->scale) continue;  // written with its weight
      auto m = random_matrix(*e->spec, opt.seed, e->expert, init_dtype(*e->spec, opt.dtype));
      w.write(e->decl.name, m.bytes.data());
      if (!m.scale_inv.empty()) w.write(e->decl.name + "_scale_inv", m.scale_inv.data());
    }
    w.close();
    if (opt.progress)
      fmt::print(stderr, "wrote {} ({} tensors, {:.1f} MB) {:.1f} s\n", file, decls.size(),
                 fs::file_size(fs::path(dir) / file) / 1e6, t0.seconds());
  }
  std::ofstream(fs::path(dir) / "model.safetensors.index.json") << index.dump(2);
}

}  // namespace dpep
