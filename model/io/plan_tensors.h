// The tensors a memory plan counts, with the dtype each will be stored in, from the three
// places a model can come from: a dpep file (dataset metadata only, no weight is read), a
// Hugging Face folder (shard headers, or just config.json), or a preset (init-model's rules).
// The MTP layers are not among them: dpep does not load them.
#pragma once
#include <string>
#include <vector>

#include "model/io/converter.h"
#include "model/io/memory_plan.h"

namespace dpep {

class WeightsReader;

std::vector<PlanTensor> plan_tensors_from_file(const WeightsReader& file);
// As `dpep init-model --dtype dtype` stores them.
std::vector<PlanTensor> plan_tensors_for_init(const ModelConfig& c, DType dtype);

// A Hugging Face folder as `dpep convert --dtype mode` would store it. With safetensors shards
// the dtypes come from their headers; with only config.json, from quantization_config (fp8
// linear weights, bf16 elsewhere) or torch_dtype. `config` receives the parsed config.
std::vector<PlanTensor> plan_tensors_from_hf(const std::string& dir, ConvertDType mode,
                                             ModelConfig& config);

}  // namespace dpep
