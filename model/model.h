// The DeepSeek-V3 decoder: embedding, layers of (RMSNorm, MLA, RMSNorm, MLP or MoE), final norm,
// lm_head. Holds a full replica of everything but the routed experts, of which it holds the
// contiguous shard of its rank. No MPI: MoE tokens move through an injected ExpertExchange.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "comm/expert_exchange.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/mla.h"
#include "model/moe.h"
#include "model/ops/dtypes.h"
#include "model/ops/large_alloc.h"
#include "model/rope.h"
#include "model/run_state.h"

namespace dpep {

class WeightsReader;

// Which routed experts this process holds: rank `rank` of `num_ranks`, under the one placement
// rule (comm::ExpertPlacement) that the exchange routes by.
struct ExpertShard {
  int rank = 0;
  int num_ranks = 1;
  comm::ExpertPlacement placement(int num_experts) const { return {num_experts, num_ranks}; }
};

struct LayerWeights {
  std::vector<float> input_layernorm;           // [H]
  std::vector<float> post_attention_layernorm;  // [H]
  MlaWeights attn;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
};

// Embedding rows in their stored dtype (float32 or bf16), widened one row at a time.
struct Embedding {
  DType dtype = DType::F32;
  int rows = 0, cols = 0;
  LargeBytes data;  // [rows, cols] raw elements
  static Embedding from_f32(const std::vector<float>& v, int rows, int cols);
  void row(int id, float* out) const {
    to_f32(dtype, data.data() + static_cast<size_t>(id) * cols * dtype_bytes(dtype), out, cols);
  }
  size_t bytes() const { return data.size(); }
};

struct ModelWeights {
  Embedding embed_tokens;  // [V, H]
  std::vector<LayerWeights> layers;
  std::vector<float> norm;  // [H]
  Linear lm_head;           // [V, H]
};

struct ModelOptions {
  bool simulate_perfect_eplb = false;
  // BF16: dense, expert, attention-projection, absorbed kv_b and lm_head GEMMs in bf16
  // (packed_gemm); the router, norms, RoPE and softmax stay float32.
  MatmulDType matmul_dtype = MatmulDType::F32;
};

// Told each phase of a forward as it ends (steady-clock seconds; layer -1 for the head). The
// --trace-dir writer implements it; the model knows nothing of files.
class PhaseSink {
 public:
  virtual ~PhaseSink() = default;
  virtual void phase(const char* name, int layer, double begin_s, double end_s) = 0;
};

// Per-forward timings (seconds) and expert load, accumulated by the caller's choice.
struct ForwardStats {
  double attention_s = 0, dense_mlp_s = 0, head_s = 0;
  std::vector<MoeStats> moe;    // per layer (only MoE layers are filled)
  PhaseSink* phases = nullptr;  // when set, every phase is also reported here (tracing)
};

// Reads every tensor of model_tensor_specs() into its field (model/weights_binding.h), only this
// shard's experts. Throws naming the file and dataset on any problem.
ModelWeights load_model_weights(const WeightsReader& file, const ExpertShard& shard);

class Model {
 public:
  Model(ModelConfig config, ModelWeights weights, ExpertShard shard, ModelOptions opt = {});

  const ModelConfig& config() const { return config_; }
  const ExpertShard& shard() const { return shard_; }
  int kv_width() const { return static_cast<int>(config_.kv_lora_rank + config_.qk_rope_head_dim); }
  // The latent cache is kept in bf16 (two copies, see KvCacheView) in bf16 matmul mode when the
  // build has the AVX512-BF16 attention kernel; float32 otherwise.
  bool kv_cache_bf16() const;
  size_t weight_bytes() const;
  MatmulDType matmul_dtype() const { return opt_.matmul_dtype; }
  // Weight bytes one decode token reads, as held: every attention and dense weight, the router,
  // num_experts_per_tok routed experts (local mean size) and the shared ones, lm_head.
  double weight_bytes_per_token() const;

  // Runs every layer on `batch` (any mix of prefill chunks and decode rows; may be empty, in
  // which case it still takes part in every MoE exchange). Writes the latents of the batch's
  // positions into `kv`. Every buffer it writes is in `rs` (reused: a warm decode step
  // allocates nothing); rs.logits: [batch.logits_rows.size(), vocab].
  void forward(const ForwardBatch& batch, const KvCacheView& kv, comm::ExpertExchange& ex,
               RunState& rs, ForwardStats* stats = nullptr) const;
  // The same with a run-state for this call only (tests, tools); logits as above.
  void forward(const ForwardBatch& batch, const KvCacheView& kv, comm::ExpertExchange& ex,
               std::vector<float>& logits, ForwardStats* stats = nullptr) const;
  // A run-state for steps of at most `max_rows` rows, `max_logits_rows` sampled rows and
  // sequences of at most `max_context` positions.
  RunState make_run_state(int max_rows, int max_logits_rows, int max_context) const {
    return RunState(config_, {max_rows, max_logits_rows, max_context, !kv_cache_bf16()});
  }

 private:
  ModelConfig config_;
  ModelWeights w_;
  ExpertShard shard_;
  ModelOptions opt_;
  Rope rope_;
  MoeOptions moe_opt_;
};

}  // namespace dpep
