// load_model_weights (declared in model.h): the schema's table, walked once, each tensor read
// in its stored dtype straight into its field (see to_linear: at most one extra copy of one
// tensor at a time, as the memory plan assumes).
#include "model/weights_binding.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/io/fp8_block.h"
#include "model/io/weights_file.h"

namespace dpep {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

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

std::logic_error no_field(const TensorSpec& spec, const char* why) {
  return std::logic_error(fmt::format("tensor '{}' has no field in the model: {}", spec.name, why));
}

LayerWeights& layer_of(ModelWeights& w, const TensorSpec& spec) {
  if (spec.layer < 0 || spec.layer >= static_cast<int64_t>(w.layers.size()))
    throw no_field(spec, "layer out of range");
  return w.layers[spec.layer];
}
MlpWeights& dense_of(ModelWeights& w, const TensorSpec& spec) {
  LayerWeights& L = layer_of(w, spec);
  if (L.is_moe) throw no_field(spec, "a dense-MLP tensor on a MoE layer");
  return L.mlp;
}
MoeWeights& moe_of(ModelWeights& w, const TensorSpec& spec) {
  LayerWeights& L = layer_of(w, spec);
  if (!L.is_moe) throw no_field(spec, "a MoE tensor on a dense layer");
  return L.moe;
}
MlpWeights& shared_of(ModelWeights& w, const TensorSpec& spec) {
  MoeWeights& m = moe_of(w, spec);
  if (!m.has_shared) throw no_field(spec, "a shared expert the config does not have");
  return m.shared;
}

WeightField field_of(ModelWeights& w, const TensorSpec& s) {
  using S = TensorSlot;
  switch (s.slot) {
    case S::EmbedTokens:
      return &w.embed_tokens;
    case S::Norm:
      return &w.norm;
    case S::LmHead:
      return &w.lm_head;
    case S::InputLayernorm:
      return &layer_of(w, s).input_layernorm;
    case S::PostAttentionLayernorm:
      return &layer_of(w, s).post_attention_layernorm;
    case S::QAProj:
      return &layer_of(w, s).attn.q_a_proj;
    case S::QALayernorm:
      return &layer_of(w, s).attn.q_a_layernorm;
    case S::QBProj:
      return &layer_of(w, s).attn.q_b_proj;
    case S::QProj:
      return &layer_of(w, s).attn.q_proj;
    case S::KvAProjWithMqa:
      return &layer_of(w, s).attn.kv_a_proj_with_mqa;
    case S::KvALayernorm:
      return &layer_of(w, s).attn.kv_a_layernorm;
    case S::KvBProj:
      return &layer_of(w, s).attn.kv_b_proj;
    case S::OProj:
      return &layer_of(w, s).attn.o_proj;
    case S::MlpGate:
      return &dense_of(w, s).gate;
    case S::MlpUp:
      return &dense_of(w, s).up;
    case S::MlpDown:
      return &dense_of(w, s).down;
    case S::Router:
      return &moe_of(w, s).gate;
    case S::RouterBias:
      return &moe_of(w, s).bias;
    case S::ExpertsGate:
      return ExpertsField{&moe_of(w, s), &MlpWeights::gate};
    case S::ExpertsUp:
      return ExpertsField{&moe_of(w, s), &MlpWeights::up};
    case S::ExpertsDown:
      return ExpertsField{&moe_of(w, s), &MlpWeights::down};
    case S::SharedGate:
      return &shared_of(w, s).gate;
    case S::SharedUp:
      return &shared_of(w, s).up;
    case S::SharedDown:
      return &shared_of(w, s).down;
    case S::MtpEmbedTokens:
    case S::MtpEnorm:
    case S::MtpHnorm:
    case S::MtpEhProj:
    case S::MtpHeadNorm:
    case S::MtpHead:
      throw no_field(s, "MTP layers are not loaded");
  }
  throw no_field(s, "unknown slot");
}

bool kind_fits(const TensorSpec& s, const WeightField& f) {
  switch (s.kind) {
    case TensorKind::Vector:
    case TensorKind::Router:
      return std::holds_alternative<std::vector<float>*>(f);
    case TensorKind::Matrix:
      return std::holds_alternative<Linear*>(f);
    case TensorKind::Embedding:
      return std::holds_alternative<Embedding*>(f) || std::holds_alternative<Linear*>(f);
    case TensorKind::Experts:
      return std::holds_alternative<ExpertsField>(f);
  }
  return false;
}

// Reads `spec` into `field`; a routed-expert stack only for this shard's experts, one expert at
// a time (hyperslab of the stacked dataset, one expert per chunk).
void load_tensor(const WeightsReader& f, const TensorSpec& spec, const WeightField& field) {
  const std::vector<int64_t>& shape = spec.shape;
  std::visit(Overloaded{
                 [&](std::vector<float>* v) { *v = f.read_f32(spec.name, shape); },
                 [&](Linear* l) {
                   *l = to_linear(f.read_raw(spec.name, shape), shape[0], shape[1],
                                  f.path() + ": " + spec.name);
                 },
                 [&](Embedding* e) {
                   RawTensor raw = f.read_raw(spec.name, shape);
                   if (raw.dtype == DType::F8E4M3)
                     throw std::runtime_error(fmt::format(
                         "{}: dataset '{}' is f8e4m3 (f32 or bf16 only)", f.path(), spec.name));
                   e->dtype = raw.dtype;
                   e->rows = static_cast<int>(shape[0]);
                   e->cols = static_cast<int>(shape[1]);
                   e->data = std::move(raw.data);
                 },
                 [&](ExpertsField x) {
                   const int64_t out = shape[1], in = shape[2];
                   for (size_t i = 0; i < x.moe->local.size(); ++i) {
                     const int64_t e = x.moe->first_local + static_cast<int64_t>(i);
                     x.moe->local[i].*x.proj =
                         to_linear(f.read_items_raw(spec.name, e, 1, {out, in}), out, in,
                                   fmt::format("{}: {} item {}", f.path(), spec.name, e));
                   }
                 },
             },
             field);
}

}  // namespace

ModelWeights model_weights_skeleton(const ModelConfig& c, const ExpertShard& shard) {
  ModelWeights w;
  w.layers.resize(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights& L = w.layers[l];
    L.is_moe = c.is_moe_layer(l);
    if (!L.is_moe) continue;
    const comm::ExpertPlacement placement = shard.placement(static_cast<int>(c.n_routed_experts));
    L.moe.placement = placement;
    L.moe.first_local = static_cast<int>(placement.first_local(shard.rank));
    L.moe.local.resize(placement.experts_per_rank());
    L.moe.has_shared = c.n_shared_experts > 0;
  }
  return w;
}

WeightField weight_field(ModelWeights& w, const TensorSpec& spec) {
  WeightField f = field_of(w, spec);
  if (!kind_fits(spec, f)) throw no_field(spec, "its kind does not fit its slot's field");
  return f;
}

ModelWeights load_model_weights(const WeightsReader& f, const ExpertShard& shard) {
  const ModelConfig& c = f.config();
  if (c.n_routed_experts > 0 && c.n_routed_experts % shard.num_ranks != 0)
    throw std::invalid_argument(fmt::format(
        "{} ranks do not divide the {} routed experts of {}: use a rank count that divides it",
        shard.num_ranks, c.n_routed_experts, f.path()));
  ModelWeights w = model_weights_skeleton(c, shard);
  // The tensors outside the layers first: the embedding and lm_head are the largest, and their
  // read buffers then come and go while little else is resident, not on top of every weight.
  std::vector<TensorSpec> specs = model_tensor_specs(c);
  std::stable_partition(specs.begin(), specs.end(),
                        [](const TensorSpec& s) { return s.layer < 0; });
  for (const TensorSpec& spec : specs) load_tensor(f, spec, weight_field(w, spec));
  return w;
}

}  // namespace dpep
