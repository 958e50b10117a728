// Streaming conversion of a Hugging Face DeepSeek-V3 checkpoint into a dpep model file.
// Every tensor of model_tensor_specs(config) is read from its shard, converted and written
// before the next is read: plain tensors in slabs of rows (slab_bytes), routed experts one
// expert at a time, so peak memory is one slab or one expert plus its converted copy.
#pragma once
#include <cstdint>
#include <string>

#include "model/io/safetensors.h"
#include "model/io/weights_schema.h"
#include "model/ops/dtypes.h"

namespace dpep {

// keep: bf16 stays bf16, f32 stays f32, f16 becomes f32 (exact), fp8 with block scales stays
// fp8 (only for linear weights; fp8 embeddings/norms/router are dequantised to f32).
// bf16: everything becomes bf16 (fp8 dequantised, then rounded). fp32: everything float32.
enum class ConvertDType { Keep, BF16, F32 };
ConvertDType convert_dtype_from_name(const std::string& s);  // keep | bf16 | fp32
// The dtype a checkpoint tensor of dtype `src` gets in the dpep file (table in model-format.md).
DType convert_output_dtype(const TensorSpec& spec, StDType src, ConvertDType mode);

struct ConvertOptions {
  std::string hf_dir;
  std::string out_path;
  ConvertDType dtype = ConvertDType::Keep;
  bool progress = true;               // one line per tensor on stderr
  uint64_t slab_bytes = 64ull << 20;  // rows of a plain tensor converted at a time
};

struct ConvertStats {
  int64_t tensors = 0;         // dpep datasets written (scales not counted)
  uint64_t bytes_read = 0;     // checkpoint bytes read
  uint64_t largest_piece = 0;  // largest single checkpoint tensor read, bytes
  double seconds = 0;
  // MTP ("nextn") layers: declared by config.json, and found in the checkpoint and kept in the
  // file as mtp/{i}/* (not loaded by dpep); mtp_tensors counts their datasets.
  int64_t mtp_declared = 0, mtp_layers = 0, mtp_tensors = 0;
  int64_t mtp_layer_first = 0;  // checkpoint index of the first MTP layer (num_hidden_layers)
  std::string mtp_note;         // why MTP layers found in the checkpoint were not kept
};

// config.json's quantization_config: none, or fp8 e4m3 with 128x128 weight blocks (DeepSeek's
// release). Anything else is a std::invalid_argument naming the field.
struct HfQuantization {
  bool fp8 = false;
};
HfQuantization hf_quantization_from_config(const std::string& config_json);

// Validates the whole mapping first (missing, unknown, wrong shape or dtype: std::runtime_error
// naming the tensor) and only then writes. A failed conversion removes the partial output.
ConvertStats convert_checkpoint(const ConvertOptions& opt);

}  // namespace dpep
