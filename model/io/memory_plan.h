// What one rank will hold, worked out from the config, the stored dtype of every tensor and the
// run flags, before any weight is read: weights by dtype, KV cache, activations, runtime
// overhead. Pure arithmetic (no I/O), so that `dpep plan` and the start of a run agree and the
// numbers can be checked by hand (docs/memory-plan.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/io/weights_schema.h"
#include "model/ops/dtypes.h"

namespace dpep {

// A tensor of the model as stored (fp8 tensors carry float32 128x128 block scales).
struct PlanTensor {
  TensorSpec spec;
  DType dtype = DType::F32;
};

struct PlanFlags {
  int ranks = 1;                  // ranks in the job (the routed experts are split over them)
  int ranks_per_host = 1;         // ranks sharing one host's memory
  long long kv_cache_tokens = 0;  // > 0: KV cache tokens per rank; 0: cache_fraction
  double cache_fraction = 0.3;    // of the host's available memory, split by its ranks
  int page_size = 64;
  int max_batch_size = 256;
  int max_prefill_tokens = 8192;
  int threads = 1;       // threads per rank (per-thread attention scratch, BLAS buffers)
  bool kv_bf16 = false;  // bf16 latent cache (bf16 matmul mode) instead of float32
};

struct MemoryPlan {
  // Weights resident on this rank, by stored dtype. Vectors (norms, biases) count as float32:
  // they are kept float32 in memory whatever the file holds.
  uint64_t weights_f32 = 0, weights_bf16 = 0, weights_fp8 = 0, fp8_scales = 0;
  uint64_t replicated = 0, experts = 0;  // the same weights, by placement
  int64_t experts_on_rank = 0;
  uint64_t largest_tensor = 0;  // transient while loading: one tensor's stored bytes
  long long kv_tokens = 0;      // whole pages
  uint64_t kv_bytes_per_token = 0, kv_bytes = 0;
  int max_prefill_tokens = 0;  // the prefill rows per step the activations are planned for
  uint64_t activations = 0;    // one step's buffers at max_prefill_tokens + max_batch_size rows
  uint64_t overhead = 0;       // libraries, MPI, BLAS buffers, thread stacks (allowance)

  uint64_t weights() const { return weights_f32 + weights_bf16 + weights_fp8 + fp8_scales; }
  // Loading (weights + one tensor in flight) and serving (weights + KV + activations) do not
  // overlap: the KV cache is allocated after the weights are in.
  uint64_t peak() const {
    const uint64_t run = kv_bytes + activations;
    return weights() + overhead + (largest_tensor > run ? largest_tensor : run);
  }
};

// The dtype a weight has in a rank's memory: its stored dtype (FP8 stays FP8 with its block
// scales, bf16 stays bf16), except vectors, which are kept float32. The one place to change if
// the loader keeps weights in another form.
DType resident_dtype(const TensorSpec& spec, DType stored);

// KV cache bytes per token per rank, all layers. The one place that knows the cache layout
// (runtime/kv_cache.h): float32 [kv_lora + rope]; bf16 mode keeps two bf16 copies (one for
// scores, one for values), i.e. (kv_lora + rope + kv_lora) x 2 bytes.
uint64_t kv_cache_bytes_per_token(const ModelConfig& c, bool bf16);

// Activation buffers of one forward step (float32) at max_prefill_tokens + max_batch_size rows:
// the residual stream, the largest of attention / dense MLP / MoE transients (MoE rows with 2x
// headroom over balanced routing), and the logits.
uint64_t activation_bytes(const ModelConfig& c, const PlanFlags& f);

// --max-prefill-tokens 0 (auto), as SGLang sizes its chunked prefill by the memory it has: the
// largest of 8192, 4096, ..., 256 prefill tokens per step whose activations stay within the
// larger of kAutoActivationBytes and 5% of the rank's weights, and for which `ranks_per_host`
// ranks fit in `host_available`
// (f.max_prefill_tokens is ignored). 256 if the cap leaves nothing larger; 8192 if no size fits
// the host: the plan then says so.
inline constexpr uint64_t kAutoActivationBytes = 1500ull * 1000 * 1000;
int auto_max_prefill_tokens(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                            PlanFlags f, uint64_t host_available);

// Fixed per-rank allowance for what is neither weights, cache nor activations.
uint64_t runtime_overhead_bytes(int threads);

// The plan of one rank. `host_available` (bytes) is only used when kv_cache_tokens == 0: the KV
// cache then gets cache_fraction / ranks_per_host of what the host has left after every rank's
// weights, activations and overhead. Throws std::invalid_argument if ranks do not divide the
// routed experts.
MemoryPlan make_memory_plan(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                            const PlanFlags& f, uint64_t host_available);

// Multi-line human-readable plan (one rank), for logs and `dpep plan`.
std::string format_memory_plan(const MemoryPlan& p, const PlanFlags& f);

// "12.3 GB" (decimal units, as df and the kernel's OOM report do not agree on binary ones).
std::string format_bytes(uint64_t b);

// When `ranks_per_host` ranks of plan `p` do not fit in `available` bytes: the message every
// rank prints, with the numbers and the flags that would make it fit (more ranks over more
// hosts, fewer ranks per host, a smaller KV cache, fewer prefill tokens). Empty when it fits.
std::string memory_misfit_message(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                                  const PlanFlags& f, const MemoryPlan& p, uint64_t available,
                                  const std::string& where);

}  // namespace dpep
