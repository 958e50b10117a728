// Where each tensor of the schema (model/io/weights_schema.h) goes in ModelWeights. The loader
// walks model_tensor_specs() and puts every tensor into the one field its slot names, so the
// tensor names are written only in the schema.
#pragma once
#include <variant>
#include <vector>

#include "model/io/weights_schema.h"
#include "model/model.h"

namespace dpep {

// A routed-expert stack [E, out, in]: projection `proj` of each of this shard's experts.
struct ExpertsField {
  MoeWeights* moe = nullptr;
  Linear MlpWeights::*proj = nullptr;
};
// Vector and Router tensors go to a float32 vector, Matrix tensors and lm_head to a Linear, the
// embedding to an Embedding, Experts to an ExpertsField.
using WeightField = std::variant<std::vector<float>*, Linear*, Embedding*, ExpertsField>;

// ModelWeights shaped for `c` and `shard` before any tensor is read: one LayerWeights per layer
// with is_moe, and for MoE layers the placement, has_shared and this shard's (empty) experts.
ModelWeights model_weights_skeleton(const ModelConfig& c, const ExpertShard& shard);

// The field of `w` (a skeleton of the same config) that `spec` fills. std::logic_error when the
// slot has no field there: an MTP slot, a MoE slot on a dense layer or the reverse, a layer out
// of range, or a kind that does not fit the field.
WeightField weight_field(ModelWeights& w, const TensorSpec& spec);

}  // namespace dpep
