#include "model/model.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "model/ops/attention_kernel.h"
#include "model/ops/ops.h"
#include "model/io/weights_file.h"
#include "comm/clock.h"

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

Linear read_linear(const WeightsReader& f, const std::string& name, int64_t out, int64_t in) {
  return Linear(f.read_f32(name, {out, in}), static_cast<int>(out), static_cast<int>(in));
}

MlpWeights read_mlp(const WeightsReader& f, const std::string& prefix, int64_t inter, int64_t H) {
  auto g = f.read_f32(prefix + "gate_proj", {inter, H});
  auto u = f.read_f32(prefix + "up_proj", {inter, H});
  auto d = f.read_f32(prefix + "down_proj", {H, inter});
  return make_mlp(g.data(), u.data(), d.data(), static_cast<int>(inter), static_cast<int>(H));
}

}  // namespace

ModelWeights load_model_weights(const WeightsReader& f, const ExpertShard& shard) {
  const ModelConfig& c = f.config();
  const int64_t H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads;
  if (c.n_routed_experts > 0 && c.n_routed_experts % shard.num_ranks != 0)
    throw std::invalid_argument(fmt::format(
        "{} ranks do not divide the {} routed experts of {}: use a rank count that divides it",
        shard.num_ranks, c.n_routed_experts, f.path()));
  ModelWeights w;
  w.embed_tokens = f.read_f32("embed_tokens", {V, H});
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
      // Only this rank's experts are read (hyperslab of the stacked [E, ...] datasets).
      auto g = f.read_items_f32(p + "moe/experts/gate_proj", first, per, {I, H});
      auto u = f.read_items_f32(p + "moe/experts/up_proj", first, per, {I, H});
      auto d = f.read_items_f32(p + "moe/experts/down_proj", first, per, {H, I});
      L.moe.placement = placement;
      L.moe.first_local = static_cast<int>(first);
      for (int64_t e = 0; e < per; ++e) {
        const size_t off = static_cast<size_t>(e) * I * H;
        L.moe.local.push_back(
            make_mlp(&g[off], &u[off], &d[off], static_cast<int>(I), static_cast<int>(H)));
      }
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
    if (!Bf16Matmul::supported())
      throw std::runtime_error(
          "--matmul-dtype bf16 needs a CPU with AVX512-BF16 or AMX (oneDNN found neither)");
    auto pack_mlp = [](MlpWeights& m) {
      m.gate_up.to_bf16();
      m.down.to_bf16();
    };
    w_.lm_head.to_bf16();
    for (auto& L : w_.layers) {
      pack_mla_bf16(config_, L.attn);
      if (!L.is_moe) pack_mlp(L.mlp);
      if (L.moe.has_shared) pack_mlp(L.moe.shared);
      for (auto& e : L.moe.local) pack_mlp(e);
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
  size_t b = (w_.embed_tokens.size() + w_.norm.size()) * 4 + w_.lm_head.bytes();
  for (const auto& L : w_.layers) {
    b += (L.input_layernorm.size() + L.post_attention_layernorm.size()) * 4;
    const auto& a = L.attn;
    b += a.q_a_proj.bytes() + a.q_b_proj.bytes() + a.q_proj.bytes() + a.kv_a_proj_with_mqa.bytes() +
         a.kv_b_proj.bytes() + a.o_proj.bytes();
    b += L.mlp.gate_up.bytes() + L.mlp.down.bytes();
    b += L.moe.gate.size() * 4 + L.moe.shared.gate_up.bytes() + L.moe.shared.down.bytes();
    for (const auto& e : L.moe.local) b += e.gate_up.bytes() + e.down.bytes();
  }
  return b;
}

void Model::forward(const ForwardBatch& batch, const KvCacheView& kv, comm::ExpertExchange& ex,
                    std::vector<float>& logits, ForwardStats* stats) const {
  const ModelConfig& c = config_;
  const int T = batch.num_rows(), H = static_cast<int>(c.hidden_size);
  const int V = static_cast<int>(c.vocab_size);
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (stats && stats->moe.size() != w_.layers.size()) stats->moe.resize(w_.layers.size());

  // hidden [T, H]
  std::vector<float> hidden(static_cast<size_t>(T) * H), normed(hidden.size()),
      delta(hidden.size());
  for (int t = 0; t < T; ++t) {
    const int id = batch.token_ids[t];
    if (id < 0 || id >= V)
      throw std::out_of_range(fmt::format("token id {} is outside the vocabulary [0, {})", id, V));
    std::memcpy(&hidden[static_cast<size_t>(t) * H], &w_.embed_tokens[static_cast<size_t>(id) * H],
                sizeof(float) * H);
  }
  std::vector<float> scratch;
  for (int l = 0; l < static_cast<int>(w_.layers.size()); ++l) {
    const LayerWeights& L = w_.layers[l];
    double t0 = now_seconds();
    rmsnorm_rows_to(hidden.data(), normed.data(), T, H, L.input_layernorm.data(), eps);
    mla_forward(c, L.attn, rope_, l, normed.data(), batch, kv, delta.data());
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += delta[i];
    double t1 = now_seconds();
    rmsnorm_rows_to(hidden.data(), normed.data(), T, H, L.post_attention_layernorm.data(), eps);
    if (L.is_moe) {
      PhaseSink* sink = stats ? stats->phases : nullptr;
      const MoeTimes before = sink ? MoeTimes(stats->moe[l]) : MoeTimes(MoeStats{});
      const double tm = sink ? now_seconds() : 0;
      moe_forward(L.moe, moe_opt_, H, normed.data(), T, ex, delta.data(),
                  stats ? &stats->moe[l] : nullptr);
      if (sink) report_moe_phases(*sink, l, tm, before, MoeTimes(stats->moe[l]));
    } else {
      mlp_forward(L.mlp, normed.data(), T, delta.data(), scratch);
    }
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += delta[i];
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
  std::vector<float> last(static_cast<size_t>(R) * H);
  for (int i = 0; i < R; ++i)
    std::memcpy(&last[static_cast<size_t>(i) * H],
                &hidden[static_cast<size_t>(batch.logits_rows[i]) * H], sizeof(float) * H);
  rmsnorm_rows(last.data(), R, H, w_.norm.data(), eps);
  logits.resize(static_cast<size_t>(R) * V);
  w_.lm_head.forward(last.data(), R, logits.data());
  if (stats) {
    const double te = now_seconds();
    stats->head_s += te - th;
    if (stats->phases) stats->phases->phase("head", -1, th, te);
  }
}

}  // namespace dpep
