// Random weights for a ModelConfig (dpep init-model), written tensor by tensor.
// Every row of every tensor has its own generator seeded from (seed, dataset name, expert,
// row), so values do not depend on write order, chunking or output format: the dpep file and
// the Hugging Face export of the same seed hold the same numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/io/weights_schema.h"
#include "model/ops/dtypes.h"

namespace dpep {

struct InitOptions {
  uint64_t seed = 0;
  DType dtype = DType::BF16;  // F8E4M3: linear weights fp8 with 128x128 block scales
  bool progress = false;      // one line per tensor on stderr
};

// Fills row `row` (length cols) of item `expert` (-1 when not stacked) of `spec` in float32:
//   linear weights, router, embed_tokens: N(0, 0.02); lm_head: N(0, 1/hidden) so logits have
//   std ~1; norms: 1 + 0.01 N; e_score_correction_bias: 0.01 N. N is approximately normal
//   (Irwin-Hall sum of four uniforms, bounded at +-3.46 sigma).
void random_row(const TensorSpec& spec, uint64_t seed, int64_t expert, int64_t row, float* out,
                int64_t cols);

// The stored dtype of a spec under `dtype`: fp8 only where spec.fp8_allowed(); in fp8 mode
// embeddings and the router are bf16 and vectors f32.
DType init_dtype(const TensorSpec& spec, DType dtype);

// One matrix of random values encoded as `dtype`: bytes [rows*cols*dtype_bytes] and, for fp8,
// scale_inv [ceil(rows/128), ceil(cols/128)].
struct EncodedMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> scale_inv;
};
EncodedMatrix random_matrix(const TensorSpec& spec, uint64_t seed, int64_t expert, DType dtype);
// Rows [row0, row0 + nrows) of the same matrix (row0 a multiple of 128 for fp8).
EncodedMatrix random_rows(const TensorSpec& spec, uint64_t seed, int64_t expert, int64_t row0,
                          int64_t nrows, DType dtype);

// Writes a complete dpep model file. tokenizer_dir (optional) supplies tokenizer.json and
// tokenizer_config.json, stored as tokenizer/<file>.
void write_random_model(const ModelConfig& cfg, const InitOptions& opt, const std::string& out_path,
                        const std::string& tokenizer_dir = "");

}  // namespace dpep
