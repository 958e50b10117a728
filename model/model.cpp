#include "model/model.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "comm/clock.h"
#include "model/io/fp8_block.h"
#include "model/io/weights_file.h"
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

// A weight matrix (or one stacked item) kept in its stored dtype: the raw bytes are packed into
// tiles and freed, so loading holds at most one extra copy of one tensor.
Linear to_linear(RawTensor raw, int64_t out, int64_t in, const std::string& where) {
  const int o = static_cast<int>(out), i = static_cast<int>(in);
  switch (raw.dtype) {
    case DType::F32: {
      std::vector<float> w(static_cast<size_t>(out) * in);
      std::memcpy(w.data(), raw.data.data(), w.size() * sizeof(float));
      return Linear(std::move(w), o, i);
    }
    case DType::BF16:
      return Linear(
          PackedWeight::from_bf16(reinterpret_cast<const uint16_t*>(raw.data.data()), o, i));
    case DType::F8E4M3:
      if (raw.scale_inv.size() != static_cast<size_t>(fp8_blocks(out) * fp8_blocks(in)))
        throw std::runtime_error(where + ": f8e4m3 block scales of the wrong size");
      return Linear(PackedWeight::from_fp8(raw.data.data(), raw.scale_inv.data(), o, i));
  }
  throw std::logic_error("unknown dtype");
}

Linear read_linear(const WeightsReader& f, const std::string& name, int64_t out, int64_t in) {
  return to_linear(f.read_raw(name, {out, in}), out, in, f.path() + ": " + name);
}

Linear read_item_linear(const WeightsReader& f, const std::string& name, int64_t item, int64_t out,
                        int64_t in) {
  return to_linear(f.read_items_raw(name, item, 1, {out, in}), out, in,
                   fmt::format("{}: {} item {}", f.path(), name, item));
}

MlpWeights read_mlp(const WeightsReader& f, const std::string& prefix, int64_t inter, int64_t H) {
  return MlpWeights{read_linear(f, prefix + "gate_proj", inter, H),
                    read_linear(f, prefix + "up_proj", inter, H),
                    read_linear(f, prefix + "down_proj", H, inter)};
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

ModelWeights load_model_weights(const WeightsReader& f, const ExpertShard& shard) {
  const ModelConfig& c = f.config();
  const int64_t H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads;
  if (c.n_routed_experts > 0 && c.n_routed_experts % shard.num_ranks != 0)
    throw std::invalid_argument(fmt::format(
        "{} ranks do not divide the {} routed experts of {}: use a rank count that divides it",
        shard.num_ranks, c.n_routed_experts, f.path()));
  ModelWeights w;
  {
    RawTensor e = f.read_raw("embed_tokens", {V, H});
    if (e.dtype == DType::F8E4M3)
      throw std::runtime_error(f.path() + ": dataset 'embed_tokens' is f8e4m3 (f32 or bf16 only)");
    w.embed_tokens.dtype = e.dtype;
    w.embed_tokens.rows = static_cast<int>(V);
    w.embed_tokens.cols = static_cast<int>(H);
    w.embed_tokens.data = std::move(e.data);
  }
  w.norm = f.read_f32("norm", {H});
  w.lm_head = read_linear(f, "lm_head", V, H);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("layers/{}/", l);
    LayerWeights L;
    L.input_layernorm = f.read_f32(p + "input_layernorm", {H});
    L.post_attention_layernorm = f.read_f32(p + "post_attention_layernorm", {H});
    const std::string a = p + "attn/";
    const int64_t qd = c.qk_head_dim(), kvl = c.kv_lora_rank;
    if (c.q_lora_rank > 0) {
      L.attn.q_a_proj = read_linear(f, a + "q_a_proj", c.q_lora_rank, H);
      L.attn.q_a_layernorm = f.read_f32(a + "q_a_layernorm", {c.q_lora_rank});
      L.attn.q_b_proj = read_linear(f, a + "q_b_proj", nh * qd, c.q_lora_rank);
    } else {
      L.attn.q_proj = read_linear(f, a + "q_proj", nh * qd, H);
    }
    L.attn.kv_a_proj_with_mqa =
        read_linear(f, a + "kv_a_proj_with_mqa", kvl + c.qk_rope_head_dim, H);
    L.attn.kv_a_layernorm = f.read_f32(a + "kv_a_layernorm", {kvl});
    L.attn.kv_b_proj =
        read_linear(f, a + "kv_b_proj", nh * (c.qk_nope_head_dim + c.v_head_dim), kvl);
    L.attn.o_proj = read_linear(f, a + "o_proj", H, nh * c.v_head_dim);
    L.is_moe = c.is_moe_layer(l);
    if (!L.is_moe) {
      L.mlp = read_mlp(f, p + "mlp/", c.intermediate_size, H);
    } else {
      const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
      const comm::ExpertPlacement placement = shard.placement(static_cast<int>(E));
      const int64_t per = placement.experts_per_rank(), first = placement.first_local(shard.rank);
      L.moe.gate = f.read_f32(p + "moe/gate", {E, H});
      if (f.has(p + "moe/e_score_correction_bias"))
        L.moe.bias = f.read_f32(p + "moe/e_score_correction_bias", {E});
      else if (c.topk_method == TopkMethod::NoauxTc)
        throw std::runtime_error(fmt::format("{}: dataset '{}' is missing (noaux_tc needs it)",
                                             f.path(), p + "moe/e_score_correction_bias"));
      // Only this rank's experts are read, one at a time (hyperslab of the stacked [E, ...]
      // datasets, one expert per chunk).
      L.moe.placement = placement;
      L.moe.first_local = static_cast<int>(first);
      const std::string ex = p + "moe/experts/";
      for (int64_t e = first; e < first + per; ++e)
        L.moe.local.push_back(MlpWeights{read_item_linear(f, ex + "gate_proj", e, I, H),
                                         read_item_linear(f, ex + "up_proj", e, I, H),
                                         read_item_linear(f, ex + "down_proj", e, H, I)});
      if (c.n_shared_experts > 0) {
        L.moe.has_shared = true;
        L.moe.shared = read_mlp(f, p + "moe/shared/", I * c.n_shared_experts, H);
      }
    }
    w.layers.push_back(std::move(L));
  }
  return w;
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
      if (!L.is_moe) L.mlp.to_bf16();
      if (L.moe.has_shared) L.moe.shared.to_bf16();
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

size_t Model::weight_bytes() const {
  size_t b = w_.embed_tokens.bytes() + w_.norm.size() * 4 + w_.lm_head.bytes();
  for (const auto& L : w_.layers) {
    b += (L.input_layernorm.size() + L.post_attention_layernorm.size()) * 4;
    const auto& a = L.attn;
    b += a.q_a_proj.bytes() + a.q_b_proj.bytes() + a.q_proj.bytes() + a.kv_a_proj_with_mqa.bytes() +
         a.kv_b_proj.bytes() + a.o_proj.bytes();
    b += (a.uk_absorb.w.size() + a.uv_absorb.w.size()) * sizeof(uint16_t);
    b += L.mlp.bytes() + L.moe.gate.size() * 4 + L.moe.shared.bytes();
    for (const auto& e : L.moe.local) b += e.bytes();
  }
  return b;
}

double Model::weight_bytes_per_token() const {
  double b =
      w_.lm_head.bytes() + static_cast<double>(config_.hidden_size) * 4;  // + one embedding row
  for (const auto& L : w_.layers) {
    const auto& a = L.attn;
    b += a.q_a_proj.bytes() + a.q_b_proj.bytes() + a.q_proj.bytes() + a.kv_a_proj_with_mqa.bytes() +
         a.kv_b_proj.bytes() + a.o_proj.bytes();
    b += (a.uk_absorb.w.size() + a.uv_absorb.w.size()) * sizeof(uint16_t);
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
