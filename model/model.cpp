#include "model/model.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "comm/clock.h"
#include "model/ops/attention_kernel.h"
#include "model/ops/ops.h"

namespace dpep {
namespace {

struct MoeTimes {
  double t[5];
  explicit MoeTimes(const MoeStats& m)
      : t{m.router_s, m.dispatch_s, m.experts_s, m.combine_s, m.shared_s} {}
};
// Reports the MoE layer's phases to the sink: moe_forward times them back to back from `begin`,
// so the begin of each is the end of the one before.
void report_moe_phases(PhaseSink& sink, int layer, double begin, const MoeTimes& before,
                       const MoeTimes& after) {
  static const char* const names[5] = {"router", "dispatch", "experts", "combine", "shared"};
  for (int i = 0; i < 5; ++i) {
    const double d = after.t[i] - before.t[i];
    sink.phase(names[i], layer, begin, begin + d);
    begin += d;
  }
}

}  // namespace

Embedding Embedding::from_f32(const std::vector<float>& v, int rows, int cols) {
  if (v.size() != static_cast<size_t>(rows) * cols)
    throw std::invalid_argument("Embedding: size mismatch");
  Embedding e;
  e.rows = rows;
  e.cols = cols;
  e.data.resize(v.size() * sizeof(float));
  std::memcpy(e.data.data(), v.data(), e.data.size());
  return e;
}

Model::Model(ModelConfig config, ModelWeights weights, ExpertShard shard, ModelOptions opt)
    : config_(std::move(config)), w_(std::move(weights)), shard_(shard), opt_(opt), rope_(config_) {
  config_.validate();
  if (opt_.matmul_dtype == MatmulDType::BF16) {
    if (gemm_isa() == GemmIsa::None)
      throw std::runtime_error(
          "--matmul-dtype bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither; use "
          "--matmul-dtype fp32 or auto)");
    w_.lm_head.to_bf16();
    for (auto& L : w_.layers) {
      pack_mla_bf16(config_, L.attn);
      if (!L.is_moe) L.mlp.to_bf16(/*fuse=*/false);
      if (L.moe.has_shared) L.moe.shared.to_bf16(/*fuse=*/false);
      for (auto& e : L.moe.local) e.to_bf16();
    }
  }
  moe_opt_.router = RouterParams::from_config(config_);
  moe_opt_.simulate_perfect_eplb = opt_.simulate_perfect_eplb;
}

bool Model::kv_cache_bf16() const {
  return opt_.matmul_dtype == MatmulDType::BF16 && mla_bf16_cache_supported() &&
         kv_width() % 2 == 0;
}

namespace {

// Every attention weight as held (whichever of the separate and fused forms are present).
size_t attention_bytes(const MlaWeights& a) {
  return a.q_a_proj.bytes() + a.q_b_proj.bytes() + a.q_proj.bytes() + a.kv_a_proj_with_mqa.bytes() +
         a.kv_b_proj.bytes() + a.o_proj.bytes() + a.qkv_a.bytes() + a.uk_absorb.bytes() +
         a.uv_absorb.bytes();
}

}  // namespace

size_t Model::weight_bytes() const {
  size_t b = w_.embed_tokens.bytes() + w_.norm.size() * 4 + w_.lm_head.bytes();
  for (const auto& L : w_.layers) {
    b += (L.input_layernorm.size() + L.post_attention_layernorm.size()) * 4;
    b += attention_bytes(L.attn);
    b += L.mlp.bytes() + L.moe.gate.size() * 4 + L.moe.shared.bytes();
    for (const auto& e : L.moe.local) b += e.bytes();
  }
  return b;
}

double Model::weight_bytes_per_token() const {
  double b =
      w_.lm_head.bytes() + static_cast<double>(config_.hidden_size) * 4;  // + one embedding row
  for (const auto& L : w_.layers) {
    b += attention_bytes(L.attn);
    if (!L.is_moe) {
      b += L.mlp.bytes();
      continue;
    }
    b += L.moe.gate.size() * 4 + L.moe.shared.bytes();
    double experts = 0;
    for (const auto& e : L.moe.local) experts += e.bytes();
    if (!L.moe.local.empty()) b += experts / L.moe.local.size() * config_.num_experts_per_tok;
  }
  return b;
}

void Model::forward(const ForwardBatch& batch, const KvCacheView& kv, comm::ExpertExchange& ex,
                    std::vector<float>& logits, ForwardStats* stats) const {
  RunState rs;
  forward(batch, kv, ex, rs, stats);
  logits = std::move(rs.logits);
}

void Model::forward(const ForwardBatch& batch, const KvCacheView& kv, comm::ExpertExchange& ex,
                    RunState& rs, ForwardStats* stats) const {
  const ModelConfig& c = config_;
  const int T = batch.num_rows(), H = static_cast<int>(c.hidden_size);
  const int V = static_cast<int>(c.vocab_size);
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (stats && stats->moe.size() != w_.layers.size()) stats->moe.resize(w_.layers.size());
  rs.fit_threads();

  // hidden [T, H]
  const size_t n = static_cast<size_t>(T) * H;
  float* hidden = fit(rs.hidden, n);
  float* normed = fit(rs.normed, n);
  float* delta = fit(rs.delta, n);
  for (int t = 0; t < T; ++t) {
    const int id = batch.token_ids[t];
    if (id < 0 || id >= V)
      throw std::out_of_range(fmt::format("token id {} is outside the vocabulary [0, {})", id, V));
    w_.embed_tokens.row(id, &hidden[static_cast<size_t>(t) * H]);
  }
  for (int l = 0; l < static_cast<int>(w_.layers.size()); ++l) {
    const LayerWeights& L = w_.layers[l];
    double t0 = now_seconds();
    rmsnorm_rows_to(hidden, normed, T, H, L.input_layernorm.data(), eps);
    mla_forward(c, L.attn, rope_, l, normed, batch, kv, delta, rs.mla);
    for (size_t i = 0; i < n; ++i) hidden[i] += delta[i];
    double t1 = now_seconds();
    rmsnorm_rows_to(hidden, normed, T, H, L.post_attention_layernorm.data(), eps);
    if (L.is_moe) {
      PhaseSink* sink = stats ? stats->phases : nullptr;
      const MoeTimes before = sink ? MoeTimes(stats->moe[l]) : MoeTimes(MoeStats{});
      const double tm = sink ? now_seconds() : 0;
      moe_forward(L.moe, moe_opt_, H, normed, T, ex, delta, rs.moe,
                  stats ? &stats->moe[l] : nullptr);
      if (sink) report_moe_phases(*sink, l, tm, before, MoeTimes(stats->moe[l]));
    } else {
      mlp_forward(L.mlp, normed, T, delta, rs.moe.mlp_scratch, &rs.gemm);
    }
    for (size_t i = 0; i < n; ++i) hidden[i] += delta[i];
    if (stats) {
      stats->attention_s += t1 - t0;
      const double t2 = L.is_moe ? 0 : now_seconds();
      if (!L.is_moe) stats->dense_mlp_s += t2 - t1;
      if (stats->phases) {
        stats->phases->phase("attention", l, t0, t1);
        if (!L.is_moe) stats->phases->phase("dense mlp", l, t1, t2);
      }
    }
  }
  double th = now_seconds();
  const int R = static_cast<int>(batch.logits_rows.size());
  float* last = fit(rs.last, static_cast<size_t>(R) * H);
  for (int i = 0; i < R; ++i)
    std::memcpy(&last[static_cast<size_t>(i) * H],
                &hidden[static_cast<size_t>(batch.logits_rows[i]) * H], sizeof(float) * H);
  rmsnorm_rows(last, R, H, w_.norm.data(), eps);
  rs.logits.resize(static_cast<size_t>(R) * V);
  w_.lm_head.forward(last, R, rs.logits.data(), -1, -1, &rs.gemm);
  if (stats) {
    const double te = now_seconds();
    stats->head_s += te - th;
    if (stats->phases) stats->phases->phase("head", -1, th, te);
  }
}

}  // namespace dpep
