// The one table of every tensor a dpep model file holds: dpep dataset name, Hugging Face
// checkpoint name, shape, and whether it is a stack of per-expert matrices. The only place the
// tensor names are written: the loader (model/weights_binding.h), converter, random init and
// memory plan all walk this table, and pick out a tensor by its slot, never by its name.
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

// What a tensor is for, whatever its layer: the loader binds each slot to one field of the
// model's weights. The Mtp* slots exist only in the MTP layers (mtp_schema.h), not loaded.
enum class TensorSlot {
  EmbedTokens,
  Norm,
  LmHead,
  InputLayernorm,
  PostAttentionLayernorm,
  QAProj,
  QALayernorm,
  QBProj,
  QProj,
  KvAProjWithMqa,
  KvALayernorm,
  KvBProj,
  OProj,
  MlpGate,
  MlpUp,
  MlpDown,
  Router,
  RouterBias,
  ExpertsGate,
  ExpertsUp,
  ExpertsDown,
  SharedGate,
  SharedUp,
  SharedDown,
  MtpEmbedTokens,
  MtpEnorm,
  MtpHnorm,
  MtpEhProj,
  MtpHeadNorm,
  MtpHead,
};

struct TensorSpec {
  std::string name;            // dataset path in the HDF5 file, e.g. "layers/3/attn/o_proj"
  std::string hf_name;         // checkpoint name; for Experts a pattern with "{e}" for the index
  std::vector<int64_t> shape;  // full shape; Experts: [E, out, in]
  TensorKind kind;
  TensorSlot slot;
  int64_t layer = -1;  // decoder layer (checkpoint numbering); -1 outside the layers
  bool fp8_allowed() const { return kind == TensorKind::Matrix || kind == TensorKind::Experts; }
};

// Every tensor of the model, in file order (embedding, layers 0.., final norm, lm_head).
std::vector<TensorSpec> model_tensor_specs(const ModelConfig& c);

// Checkpoints that store a layer's routed experts fused ("mlp.experts.gate_up_proj" [E, 2I, H],
// gate rows first, and "mlp.experts.down_proj" [E, H, I]) instead of one tensor per expert:
// the fused tensor holding an Experts spec, and which of its `parts` row blocks per expert is
// this spec's (gate 0 and up 1 of 2; down 0 of 1).
struct FusedExperts {
  std::string hf_name;
  int part = 0, parts = 1;
};
FusedExperts hf_fused_experts(const TensorSpec& spec);

}  // namespace dpep
