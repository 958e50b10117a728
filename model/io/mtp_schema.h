// The multi-token-prediction ("nextn") layers DeepSeek-V3/R1 ship after their last decoder layer:
// checkpoint `model.layers.{L+i}.*` (L = num_hidden_layers, i < num_nextn_predict_layers), kept
// in a dpep file as datasets `mtp/{i}/*` for a later speculative decoder. dpep does not load
// them. Each holds a full decoder layer (same names as `layers/N/`) plus enorm, hnorm,
// eh_proj [H, 2H], shared_head.norm, and usually its own copies of embed_tokens and
// shared_head.head (the same values as the main model's; some exporters leave them out).
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/io/weights_schema.h"

namespace dpep {

// Every MTP tensor of every declared MTP layer, layer by layer.
std::vector<TensorSpec> mtp_tensor_specs(const ModelConfig& c);
// The specs of MTP layer i only (prefix "mtp/{i}/", TensorSpec::layer L+i).
std::vector<TensorSpec> mtp_layer_specs(const ModelConfig& c, int64_t i);
// Shared with the main model, so an exporter may leave them out.
bool mtp_spec_optional(const TensorSpec& spec);
// "model.layers.{L+i}." : the checkpoint prefix of MTP layer i.
std::string mtp_hf_prefix(const ModelConfig& c, int64_t i);

}  // namespace dpep
