#include "model/io/mtp_schema.h"

#include <fmt/format.h>

namespace dpep {

std::string mtp_hf_prefix(const ModelConfig& c, int64_t i) {
  return fmt::format("model.layers.{}.", c.num_hidden_layers + i);
}

std::vector<TensorSpec> mtp_layer_specs(const ModelConfig& c, int64_t i) {
  // The decoder part: the main schema of a model one layer deeper, layer L+i renamed.
  ModelConfig deeper = c;
  deeper.num_hidden_layers = c.num_hidden_layers + i + 1;
  const std::string from = fmt::format("layers/{}/", c.num_hidden_layers + i);
  const std::string to = fmt::format("mtp/{}/", i);
  const std::string hp = mtp_hf_prefix(c, i);
  const int64_t H = c.hidden_size, V = c.vocab_size;
  std::vector<TensorSpec> out;
  const int64_t layer = c.num_hidden_layers + i;
  auto add = [&](const std::string& name, const std::string& hf, std::vector<int64_t> shape,
                 TensorKind k, TensorSlot slot) {
    out.push_back(TensorSpec{to + name, hp + hf, std::move(shape), k, slot, layer});
  };
  add("embed_tokens", "embed_tokens.weight", {V, H}, TensorKind::Embedding,
      TensorSlot::MtpEmbedTokens);
  add("enorm", "enorm.weight", {H}, TensorKind::Vector, TensorSlot::MtpEnorm);
  add("hnorm", "hnorm.weight", {H}, TensorKind::Vector, TensorSlot::MtpHnorm);
  add("eh_proj", "eh_proj.weight", {H, 2 * H}, TensorKind::Matrix, TensorSlot::MtpEhProj);
  for (auto& s : model_tensor_specs(deeper))
    if (s.name.rfind(from, 0) == 0) {
      s.name = to + s.name.substr(from.size());
      out.push_back(std::move(s));
    }
  add("shared_head/norm", "shared_head.norm.weight", {H}, TensorKind::Vector,
      TensorSlot::MtpHeadNorm);
  add("shared_head/head", "shared_head.head.weight", {V, H}, TensorKind::Embedding,
      TensorSlot::MtpHead);
  return out;
}

std::vector<TensorSpec> mtp_tensor_specs(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  for (int64_t i = 0; i < c.num_nextn_predict_layers; ++i)
    for (auto& s : mtp_layer_specs(c, i)) out.push_back(std::move(s));
  return out;
}

bool mtp_spec_optional(const TensorSpec& spec) {
  return spec.slot == TensorSlot::MtpEmbedTokens || spec.slot == TensorSlot::MtpHead;
}

}  // namespace dpep
