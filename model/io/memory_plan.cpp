#include "model/io/memory_plan.h"

#include "model/batch.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "model/io/fp8_block.h"

namespace dpep {
namespace {

uint64_t numel(const std::vector<int64_t>& s, size_t from = 0) {
  uint64_t n = 1;
  for (size_t i = from; i < s.size(); ++i) n *= static_cast<uint64_t>(s[i]);
  return n;
}

// float32 block scales of one fp8 matrix [rows, cols].
uint64_t scale_bytes(int64_t rows, int64_t cols) {
  return static_cast<uint64_t>(fp8_blocks(rows)) * fp8_blocks(cols) * sizeof(float);
}

// Attention scratch per thread covers keys of up to this many positions.
long long context_bound(const ModelConfig& c, long long kv_tokens) {
  const long long m = c.max_position_embeddings;
  return kv_tokens > 0 ? std::min(m, kv_tokens) : m;
}

uint64_t activation_bytes_at(const ModelConfig& c, const PlanFlags& f, long long context) {
  const uint64_t T = static_cast<uint64_t>(f.max_prefill_tokens) + f.max_batch_size;
  const uint64_t B = f.max_batch_size, H = c.hidden_size, V = c.vocab_size;
  const uint64_t nh = c.num_attention_heads, qd = c.qk_head_dim(), ql = c.q_lora_rank;
  const uint64_t kvl = c.kv_lora_rank, W = kvl + c.qk_rope_head_dim, vd = c.v_head_dim;
  // hidden, normed and delta rows live through the whole step.
  const uint64_t base = 3 * T * H;
  // MLA: q, q_a, ckv, absorbed query, latent output, per-head output; per thread the gathered
  // keys and scores of a 64-row query block over the context.
  const uint64_t attn = T * (nh * qd + ql + W + nh * W + nh * kvl + nh * vd) +
                        static_cast<uint64_t>(std::max(1, f.threads)) * (64 + W) * context;
  uint64_t dense = 0, moe = 0;
  bool any_dense = false, any_moe = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    (c.is_moe_layer(l) ? any_moe : any_dense) = true;
  if (any_dense) dense = T * 2 * static_cast<uint64_t>(c.intermediate_size);
  if (any_moe) {
    const uint64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
    const uint64_t Is = static_cast<uint64_t>(c.moe_intermediate_size) * c.n_shared_experts;
    const uint64_t R = std::max(1, f.ranks), I = c.moe_intermediate_size;
    const uint64_t dest = std::min<uint64_t>(K, R);
    // Rows one expert gets: T*K*R/E when balanced; twice that for imbalance.
    const uint64_t per_expert = std::min<uint64_t>(T * R, (2 * T * K * R + E - 1) / E);
    // Router logits; rows sent (each token goes to up to min(K, ranks) ranks); rows received
    // and expert outputs (T*K pairs per rank when balanced; twice that for imbalance); per
    // thread one expert's input, output and gate/up intermediate (all threads together at most
    // the rank's pairs); the shared expert.
    moe = T * E + T * dest * H + 2 * (T * dest * H + T * K * H) +
          std::min(static_cast<uint64_t>(std::max(1, f.threads)) * per_expert, 2 * T * K) *
              (2 * H + 2 * I) +
          T * (H + 2 * Is);
  }
  const uint64_t head = B * (H + V);
  // The run-state (model/run_state.h) keeps the attention buffers and the MLP/MoE buffers for the
  // whole run, so they add up; the dense MLP and the MoE layers share theirs.
  return (base + attn + std::max(dense, moe) + head) * sizeof(float);
}

}  // namespace

DType resident_dtype(const TensorSpec& spec, DType stored) {
  return spec.kind == TensorKind::Vector ? DType::F32 : stored;
}

uint64_t kv_cache_bytes_per_token(const ModelConfig& c, bool bf16) {
  const int width = static_cast<int>(c.kv_lora_rank + c.qk_rope_head_dim);
  return static_cast<uint64_t>(c.num_hidden_layers) *
         KvCacheView::bytes_per_token_layer(width, bf16);
}

uint64_t activation_bytes(const ModelConfig& c, const PlanFlags& f) {
  return activation_bytes_at(c, f, context_bound(c, f.kv_cache_tokens));
}

uint64_t runtime_overhead_bytes(int threads) {
  // Measured: a tiny-model rank peaks at ~37 MB. The allowance adds OpenBLAS's per-thread GEMM
  // buffer, oneDNN scratchpads, MPI shared-memory segments and thread stacks.
  return (128ull << 20) + static_cast<uint64_t>(std::max(1, threads)) * (64ull << 20);
}

MemoryPlan make_memory_plan(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                            const PlanFlags& f, uint64_t host_available) {
  if (f.ranks < 1 || f.ranks_per_host < 1)
    throw std::invalid_argument("the memory plan needs at least one rank (and one per host)");
  if (c.n_routed_experts > 0 && c.n_routed_experts % f.ranks != 0)
    throw std::invalid_argument(
        fmt::format("{} ranks do not divide the {} routed experts", f.ranks, c.n_routed_experts));
  if (f.page_size < 1) throw std::invalid_argument("the KV page size must be >= 1");
  MemoryPlan p;
  p.experts_on_rank = c.n_routed_experts / f.ranks;
  for (const auto& t : tensors) {
    const auto& s = t.spec.shape;
    uint64_t bytes = 0, scales = 0;
    const DType dt = resident_dtype(t.spec, t.dtype);
    if (t.spec.kind == TensorKind::Experts) {
      const uint64_t n = static_cast<uint64_t>(p.experts_on_rank);
      bytes = n * numel(s, 1) * dtype_bytes(dt);
      if (dt == DType::F8E4M3) scales = n * scale_bytes(s[1], s[2]);
      p.experts += bytes + scales;
    } else {
      bytes = numel(s) * dtype_bytes(dt);
      if (dt == DType::F8E4M3 && s.size() == 2) scales = scale_bytes(s[0], s[1]);
      p.replicated += bytes + scales;
    }
    (dt == DType::F32    ? p.weights_f32
     : dt == DType::BF16 ? p.weights_bf16
                         : p.weights_fp8) += bytes;
    p.fp8_scales += scales;
    p.largest_tensor = std::max(p.largest_tensor, bytes + scales);
  }
  p.overhead = runtime_overhead_bytes(f.threads);
  p.kv_bytes_per_token = kv_cache_bytes_per_token(c, f.kv_bf16);
  const uint64_t page_bytes = p.kv_bytes_per_token * f.page_size;
  long long pages = 0;
  if (f.kv_cache_tokens > 0) {
    pages = (f.kv_cache_tokens + f.page_size - 1) / f.page_size;
  } else {
    // What the host has left after every rank's non-cache memory, at the largest context.
    const uint64_t rest = p.weights() + p.overhead + activation_bytes_at(c, f, context_bound(c, 0));
    const uint64_t used = rest * f.ranks_per_host;
    const double left = host_available > used ? static_cast<double>(host_available - used) : 0.0;
    pages = static_cast<long long>(f.cache_fraction / f.ranks_per_host * left / page_bytes);
  }
  // At least one page; at most what an int page count holds (runtime/block_manager).
  pages = std::clamp<long long>(pages, 1, 1ll << 30);
  p.kv_tokens = pages * f.page_size;
  p.kv_bytes = static_cast<uint64_t>(pages) * page_bytes;
  p.max_prefill_tokens = f.max_prefill_tokens;
  p.activations = activation_bytes_at(c, f, context_bound(c, p.kv_tokens));
  return p;
}

int auto_max_prefill_tokens(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                            PlanFlags f, uint64_t host_available) {
  constexpr int kLargest = 8192, kSmallest = 256;
  // A prefill step of 1024 rows already keeps a V3-width GEMM compute-bound; more rows only
  // add activations (0.9 MB per row at V3 width), which a rank must hold above its weights.
  bool any_fits = false;
  for (int n = kLargest; n >= kSmallest; n /= 2) {
    f.max_prefill_tokens = n;
    const MemoryPlan p = make_memory_plan(c, tensors, f, host_available);
    if (p.peak() * static_cast<uint64_t>(f.ranks_per_host) > host_available) continue;
    any_fits = true;
    if (p.activations <= std::max(kAutoActivationBytes, p.weights() / 20)) return n;
  }
  return any_fits ? kSmallest : kLargest;
}

std::string format_bytes(uint64_t b) {
  if (b >= 1000ull * 1000 * 1000) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1000ull * 1000) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.1f} kB", b / 1e3);
}

std::string format_memory_plan(const MemoryPlan& p, const PlanFlags& f) {
  std::string s;
  s += fmt::format("weights      {:>10}  (fp8 {} + scales {}, bf16 {}, f32 {})\n",
                   format_bytes(p.weights()), format_bytes(p.weights_fp8),
                   format_bytes(p.fp8_scales), format_bytes(p.weights_bf16),
                   format_bytes(p.weights_f32));
  s += fmt::format("  replicated {:>10}  (attention, dense and shared MLPs, router, embeddings)\n",
                   format_bytes(p.replicated));
  s += fmt::format("  experts    {:>10}  ({} routed experts per layer on this rank of {})\n",
                   format_bytes(p.experts), p.experts_on_rank, f.ranks);
  s += fmt::format("KV cache     {:>10}  ({} tokens, {} bytes/token, {})\n",
                   format_bytes(p.kv_bytes), p.kv_tokens, p.kv_bytes_per_token,
                   f.kv_bf16 ? "bf16" : "float32");
  s += fmt::format("activations  {:>10}  ({} prefill + {} batch rows per step)\n",
                   format_bytes(p.activations), f.max_prefill_tokens, f.max_batch_size);
  s += fmt::format("runtime      {:>10}  ({} thread(s))\n", format_bytes(p.overhead), f.threads);
  s += fmt::format("loading      {:>10}  (largest tensor in flight, before the KV cache exists)\n",
                   format_bytes(p.largest_tensor));
  s += fmt::format("peak         {:>10}  per rank", format_bytes(p.peak()));
  return s;
}

std::string memory_misfit_message(const ModelConfig& c, const std::vector<PlanTensor>& tensors,
                                  const PlanFlags& f, const MemoryPlan& p, uint64_t available,
                                  const std::string& where) {
  const int L = f.ranks_per_host;
  const uint64_t need = static_cast<uint64_t>(L) * p.peak();
  if (need <= available) return "";
  auto fits = [&](const PlanFlags& g) {
    try {
      return static_cast<uint64_t>(g.ranks_per_host) *
                 make_memory_plan(c, tensors, g, available).peak() <=
             available;
    } catch (const std::exception&) {
      return false;
    }
  };
  std::vector<std::string> ways;
  // More ranks over more hosts, the same number per host: fewer experts per rank.
  if (c.n_routed_experts > 0)
    for (int r = f.ranks + 1; r <= c.n_routed_experts; ++r) {
      if (c.n_routed_experts % r != 0) continue;
      PlanFlags g = f;
      g.ranks = r;
      if (fits(g)) {
        ways.push_back(fmt::format("-np {} ({} per host on {} hosts: {} experts per rank)", r, L,
                                   (r + L - 1) / L, c.n_routed_experts / r));
        break;
      }
    }
  // Fewer ranks on this host.
  for (int l = L - 1; l >= 1; --l) {
    PlanFlags g = f;
    g.ranks_per_host = l;
    if (fits(g)) {
      ways.push_back(fmt::format("at most {} rank(s) per host ({} hosts for -np {})", l,
                                 (f.ranks + l - 1) / l, f.ranks));
      break;
    }
  }
  // A smaller KV cache (explicit sizes only: a fraction already adapts to what is left).
  if (f.kv_cache_tokens > 0) {
    const uint64_t per_rank = available / L;
    const uint64_t fixed = p.weights() + p.overhead;
    if (per_rank > fixed + p.largest_tensor && per_rank > fixed + p.activations) {
      const long long tokens =
          static_cast<long long>((per_rank - fixed - p.activations) / p.kv_bytes_per_token) /
          f.page_size * f.page_size;
      PlanFlags g = f;
      g.kv_cache_tokens = tokens;
      if (tokens >= f.page_size && fits(g))
        ways.push_back(fmt::format("--kv-cache-tokens {} (now {})", tokens, f.kv_cache_tokens));
    }
  }
  // Fewer prefill tokens per step (smaller activations).
  for (int t : {4096, 2048, 1024, 512, 256}) {
    if (t >= f.max_prefill_tokens) continue;
    PlanFlags g = f;
    g.max_prefill_tokens = t;
    if (fits(g)) {
      ways.push_back(fmt::format("--max-prefill-tokens {} (now {})", t, f.max_prefill_tokens));
      break;
    }
  }
  std::string msg = fmt::format(
      "not enough memory on {}: {} rank{} x {} = {} needed, {} available. Per rank: weights {} "
      "({} routed experts per layer of {}, replicated part {}), KV cache {} ({} tokens), "
      "activations {}, runtime {}, loading {}.",
      where, L, L > 1 ? "s" : "", format_bytes(p.peak()), format_bytes(need),
      format_bytes(available), format_bytes(p.weights()), p.experts_on_rank, c.n_routed_experts,
      format_bytes(p.replicated), format_bytes(p.kv_bytes), p.kv_tokens,
      format_bytes(p.activations), format_bytes(p.overhead), format_bytes(p.largest_tensor));
  if (ways.empty()) {
    msg += " No single flag makes it fit: use a host with more memory";
    if (c.n_routed_experts > 0) msg += " or more hosts with fewer ranks each";
    msg += ".";
  } else {
    msg += " It would fit with: ";
    for (size_t i = 0; i < ways.size(); ++i) msg += (i ? "; or " : "") + ways[i];
    msg += ". (`dpep plan` prints the plan for other flags.)";
  }
  return msg;
}

}  // namespace dpep
