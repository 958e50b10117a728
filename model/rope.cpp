#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace dpep {
namespace {
double get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}
}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int dim = static_cast<int>(c.qk_rope_head_dim);
  const double base = c.rope_theta;
  // torch: pos_freqs = base ** (arange(0, dim, 2).float() / dim), in float32.
  std::vector<float> out(dim / 2);
  std::vector<float> pos_freqs(dim / 2);
  for (int i = 0; i < dim / 2; ++i)
    pos_freqs[i] =
        static_cast<float>(std::pow(base, static_cast<double>(static_cast<float>(2 * i) / dim)));
  if (c.rope_scaling.type != RopeType::Yarn) {
    for (int i = 0; i < dim / 2; ++i) out[i] = 1.0f / pos_freqs[i];
    return out;
  }
  const auto& rs = c.rope_scaling;
  const double factor = rs.factor;
  auto corr_dim = [&](double rot) {
    return dim * std::log(rs.original_max_position_embeddings / (rot * 2 * M_PI)) /
           (2 * std::log(base));
  };
  double low = std::max(std::floor(corr_dim(rs.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(rs.beta_slow)), static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int i = 0; i < dim / 2; ++i) {
    const float extrap = 1.0f / pos_freqs[i];
    const float interp = 1.0f / (static_cast<float>(factor) * pos_freqs[i]);
    float ramp = static_cast<float>((i - low) / (high - low));
    ramp = std::clamp(ramp, 0.0f, 1.0f);
    const float extrap_factor = 1.0f - ramp;  // transformers: inv_freq_extrapolation_factor
    out[i] = interp * (1.0f - extrap_factor) + extrap * extrap_factor;
  }
  return out;
}

float rope_attention_factor(const ModelConfig& c) {
  if (c.rope_scaling.type != RopeType::Yarn) return 1.0f;
  const auto& rs = c.rope_scaling;
  return static_cast<float>(get_mscale(rs.factor, rs.mscale) /
                            get_mscale(rs.factor, rs.mscale_all_dim));
}

Rope::Rope(const ModelConfig& c)
    : dim_(static_cast<int>(c.qk_rope_head_dim)),
      inv_freq_(rope_inv_freq(c)),
      attention_factor_(rope_attention_factor(c)) {}

void Rope::apply(float* x, int count, int ld, int pos) const {
  const int half = dim_ / 2;
  float cs[256], sn[256];
  for (int i = 0; i < half; ++i) {
    // Angles in float32 from the integer position, as torch does (pos * inv_freq in fp32).
    const float ang = static_cast<float>(pos) * inv_freq_[i];
    cs[i] = std::cos(ang) * attention_factor_;
    sn[i] = std::sin(ang) * attention_factor_;
  }
  for (int v = 0; v < count; ++v) {
    float* p = x + static_cast<size_t>(v) * ld;
    for (int i = 0; i < half; ++i) {
      const float a = p[2 * i], b = p[2 * i + 1];
      p[2 * i] = a * cs[i] - b * sn[i];
      p[2 * i + 1] = b * cs[i] + a * sn[i];
    }
  }
}

}  // namespace dpep
