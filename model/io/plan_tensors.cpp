#include "model/io/plan_tensors.h"

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "model/io/hf_checkpoint.h"
#include "model/io/random_init.h"
#include "model/io/weights_file.h"

namespace dpep {
namespace {

StDType torch_dtype(const nlohmann::json& j) {
  const std::string t = j.contains("torch_dtype") && j["torch_dtype"].is_string()
                            ? j["torch_dtype"].get<std::string>()
                            : std::string("bfloat16");
  if (t == "bfloat16") return StDType::BF16;
  if (t == "float16") return StDType::F16;
  if (t == "float32") return StDType::F32;
  throw std::invalid_argument(fmt::format("config.json: unsupported torch_dtype '{}'", t));
}

// The checkpoint tensor holding `spec` (expert 0 for stacked experts, or the fused tensor).
const StTensor* find_tensor(const HfCheckpoint& ck, const TensorSpec& spec) {
  const std::string& name = spec.hf_name;
  const auto at = name.find("{e}");
  if (spec.kind == TensorKind::Experts && at != std::string::npos) {
    const std::string per_expert = name.substr(0, at) + "0" + name.substr(at + 3);
    if (ck.has(per_expert)) return &ck.tensor(per_expert);
    const std::string fused = hf_fused_experts(spec).hf_name;
    return ck.has(fused) ? &ck.tensor(fused) : nullptr;
  }
  return ck.has(name) ? &ck.tensor(name) : nullptr;
}

bool has_shards(const std::string& dir) {
  namespace fs = std::filesystem;
  return fs::exists(fs::path(dir) / "model.safetensors.index.json") ||
         fs::exists(fs::path(dir) / "model.safetensors");
}

}  // namespace

std::vector<PlanTensor> plan_tensors_from_file(const WeightsReader& file) {
  std::vector<PlanTensor> out;
  for (auto& spec : model_tensor_specs(file.config())) {
    const DType dt = file.info(spec.name).dtype;
    out.push_back({std::move(spec), dt});
  }
  return out;
}

std::vector<PlanTensor> plan_tensors_for_init(const ModelConfig& c, DType dtype) {
  std::vector<PlanTensor> out;
  for (auto& spec : model_tensor_specs(c)) {
    const DType dt = init_dtype(spec, dtype);
    out.push_back({std::move(spec), dt});
  }
  return out;
}

std::vector<PlanTensor> plan_tensors_from_hf(const std::string& dir, ConvertDType mode,
                                             ModelConfig& config) {
  std::vector<PlanTensor> out;
  if (has_shards(dir)) {
    HfCheckpoint ck(dir);
    config = ModelConfig::from_hf_json(ck.config_json());
    hf_quantization_from_config(ck.config_json());
    for (auto& spec : model_tensor_specs(config)) {
      const StTensor* t = find_tensor(ck, spec);
      if (!t)
        throw std::runtime_error(fmt::format("{}: missing tensor '{}' (dpep dataset '{}')", dir,
                                             spec.hf_name, spec.name));
      const DType dt = convert_output_dtype(spec, t->dtype, mode);
      out.push_back({std::move(spec), dt});
    }
    return out;
  }
  const std::string text = read_text_file((std::filesystem::path(dir) / "config.json").string());
  config = ModelConfig::from_hf_json(text);
  const bool fp8 = hf_quantization_from_config(text).fp8;
  const StDType base = torch_dtype(nlohmann::json::parse(text));
  for (auto& spec : model_tensor_specs(config)) {
    const StDType src = fp8 && spec.fp8_allowed() ? StDType::F8_E4M3 : fp8 ? StDType::BF16 : base;
    const DType dt = convert_output_dtype(spec, src, mode);
    out.push_back({std::move(spec), dt});
  }
  return out;
}

}  // namespace dpep
