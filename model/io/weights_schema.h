// The one table of every tensor a dpep model file holds: dpep dataset name, Hugging Face
// checkpoint name, shape, and whether it is a stack of per-expert matrices.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace dpep {

enum class TensorKind {
  Vector,     // norms, biases: kept float32 in memory
  Matrix,     // linear weight [out, in]; may be stored fp8 with block scales
  Embedding,  // [vocab, hidden]; never fp8
  Router,     // router gate [E, hidden]; never fp8 (DeepSeek keeps it bf16)
  Experts,    // stacked routed experts [E, out, in]; may be fp8, scales [E, ceil(out/128),
              // ceil(in/128)]
};

struct TensorSpec {
  std::string name;            // dataset path in the HDF5 file, e.g. "layers/3/attn/q_a_proj"
  std::string hf_name;         // checkpoint name; for Experts a pattern with "{e}" for the index
  std::vector<int64_t> shape;  // full shape; Experts: [E, out, in]
  TensorKind kind;
  bool fp8_allowed() const { return kind == TensorKind::Matrix || kind == TensorKind::Experts; }
};

// Every tensor of the model, in file order (embedding, layers 0.., final norm, lm_head).
std::vector<TensorSpec> model_tensor_specs(const ModelConfig& c);

}  // namespace dpep
