// A naive reference forward of the whole model for one sequence, written from the spec the way
// transformers computes it: full per-head K and V (no absorption, no cache), RoPE by
// de-interleaving and rotate_half, the router with explicit group masks, experts looped in
// ascending id with weighted accumulation. Independent of model/mla.cpp, rope.cpp, router.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/model.h"

namespace dpep::testing {

using Mat = std::vector<double>;

inline Mat lin(const Mat& x, int T, int in, const float* W, int out) {
  Mat y(size_t(T) * out, 0.0);
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += x[size_t(t) * in + i] * W[size_t(o) * in + i];
      y[size_t(t) * out + o] = s;
    }
  return y;
}

inline void rms(Mat& x, int T, int n, const std::vector<float>& w, double eps, int ld = -1,
                int off = 0) {
  if (ld < 0) ld = n;
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += x[size_t(t) * ld + off + i] * x[size_t(t) * ld + off + i];
    double inv = 1.0 / std::sqrt(ss / n + eps);
    for (int i = 0; i < n; ++i)
      x[size_t(t) * ld + off + i] = w[i] * x[size_t(t) * ld + off + i] * inv;
  }
}

// YaRN inv_freq per the spec text (double precision here on purpose).
inline std::vector<double> ref_inv_freq(const ModelConfig& c) {
  int dim = c.qk_rope_head_dim;
  double theta = c.rope_theta;
  std::vector<double> f(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    double base = std::pow(theta, 2.0 * i / dim);
    double extrap = 1 / base;
    if (c.rope_scaling.type != RopeType::Yarn) {
      f[i] = extrap;
      continue;
    }
    const auto& r = c.rope_scaling;
    double interp = 1 / (r.factor * base);
    auto corr = [&](double rot) {
      return dim * std::log(r.original_max_position_embeddings / (rot * 2 * M_PI)) /
             (2 * std::log(theta));
    };
    double low = std::max(std::floor(corr(r.beta_fast)), 0.0),
           high = std::min(std::ceil(corr(r.beta_slow)), dim - 1.0);
    if (low == high) high += 0.001;
    double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    f[i] = interp * ramp + extrap * (1 - ramp);
  }
  return f;
}

// transformers' apply_rotary_pos_emb_interleave on one vector of dim d at position pos.
inline void ref_rope(double* x, int d, int pos, const std::vector<double>& inv, double att) {
  std::vector<double> de(d), out(d);
  for (int i = 0; i < d / 2; ++i) {
    de[i] = x[2 * i];
    de[i + d / 2] = x[2 * i + 1];
  }
  for (int i = 0; i < d; ++i) {
    double ang = pos * inv[i % (d / 2)];
    double rot = i < d / 2 ? -de[i + d / 2] : de[i - d / 2];
    out[i] = de[i] * std::cos(ang) * att + rot * std::sin(ang) * att;
  }
  std::copy(out.begin(), out.end(), x);
}

inline Mat ref_mlp(const MlpWeights& m, const Mat& x, int T, int H) {
  int I = m.inter();
  Mat gm = lin(x, T, H, m.gate.data(), I), um = lin(x, T, H, m.up.data(), I);
  Mat h(size_t(T) * I);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < I; ++i) {
      double g = gm[size_t(t) * I + i], u = um[size_t(t) * I + i];
      h[size_t(t) * I + i] = g / (1 + std::exp(-g)) * u;
    }
  return lin(h, T, I, m.down.data(), H);
}

// Returns logits [T, V] for every position of `tokens` (positions 0..T-1). Needs all experts.
inline Mat naive_forward(const ModelConfig& c, const ModelWeights& w,
                         const std::vector<int>& tokens) {
  const int T = tokens.size(), H = c.hidden_size, nh = c.num_attention_heads;
  const int nope = c.qk_nope_head_dim, rd = c.qk_rope_head_dim, vd = c.v_head_dim,
            kvl = c.kv_lora_rank;
  const int qd = nope + rd;
  const double eps = c.rms_norm_eps;
  auto inv = ref_inv_freq(c);
  double att = 1.0;
  if (c.rope_scaling.type == RopeType::Yarn) {
    auto ms = [](double s, double m) { return s <= 1 ? 1.0 : 0.1 * m * std::log(s) + 1; };
    att = ms(c.rope_scaling.factor, c.rope_scaling.mscale) /
          ms(c.rope_scaling.factor, c.rope_scaling.mscale_all_dim);
  }
  double scale = std::pow(double(qd), -0.5);
  if (c.rope_scaling.type == RopeType::Yarn && c.rope_scaling.factor > 1) {
    double m = 0.1 * c.rope_scaling.mscale_all_dim * std::log(c.rope_scaling.factor) + 1;
    scale *= m * m;
  }
  Mat h(size_t(T) * H);
  std::vector<float> erow(H);
  for (int t = 0; t < T; ++t) {
    w.embed_tokens.row(tokens[t], erow.data());
    for (int i = 0; i < H; ++i) h[size_t(t) * H + i] = erow[i];
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const auto& L = w.layers[l];
    Mat x = h;
    rms(x, T, H, L.input_layernorm, eps);
    Mat q;
    if (c.q_lora_rank > 0) {
      Mat qa = lin(x, T, H, L.attn.q_a_proj.data(), c.q_lora_rank);
      rms(qa, T, c.q_lora_rank, L.attn.q_a_layernorm, eps);
      q = lin(qa, T, c.q_lora_rank, L.attn.q_b_proj.data(), nh * qd);
    } else {
      q = lin(x, T, H, L.attn.q_proj.data(), nh * qd);
    }
    Mat ckv = lin(x, T, H, L.attn.kv_a_proj_with_mqa.data(), kvl + rd);
    rms(ckv, T, kvl, L.attn.kv_a_layernorm, eps, kvl + rd, 0);
    Mat cc(size_t(T) * kvl);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < kvl; ++i) cc[size_t(t) * kvl + i] = ckv[size_t(t) * (kvl + rd) + i];
    Mat kv = lin(cc, T, kvl, L.attn.kv_b_proj.data(), nh * (nope + vd));
    for (int t = 0; t < T; ++t) {
      ref_rope(&ckv[size_t(t) * (kvl + rd) + kvl], rd, t, inv, att);
      for (int hh = 0; hh < nh; ++hh)
        ref_rope(&q[(size_t(t) * nh + hh) * qd + nope], rd, t, inv, att);
    }
    Mat o(size_t(T) * nh * vd, 0.0);
    for (int hh = 0; hh < nh; ++hh)
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        for (int u = 0; u <= t; ++u) {
          double d = 0;
          for (int i = 0; i < nope; ++i)
            d += q[(size_t(t) * nh + hh) * qd + i] * kv[(size_t(u) * nh + hh) * (nope + vd) + i];
          for (int i = 0; i < rd; ++i)
            d += q[(size_t(t) * nh + hh) * qd + nope + i] * ckv[size_t(u) * (kvl + rd) + kvl + i];
          s[u] = d * scale;
        }
        double m = *std::max_element(s.begin(), s.end()), z = 0;
        for (auto& v : s) z += (v = std::exp(v - m));
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < vd; ++i)
            o[(size_t(t) * nh + hh) * vd + i] +=
                s[u] / z * kv[(size_t(u) * nh + hh) * (nope + vd) + nope + i];
      }
    Mat ao = lin(o, T, nh * vd, L.attn.o_proj.data(), H);
    for (size_t i = 0; i < h.size(); ++i) h[i] += ao[i];
    x = h;
    rms(x, T, H, L.post_attention_layernorm, eps);
    Mat y;
    if (!L.is_moe) {
      y = ref_mlp(L.mlp, x, T, H);
    } else {
      const int E = c.n_routed_experts, K = c.num_experts_per_tok, G = c.n_group, per = E / G;
      Mat logits = lin(x, T, H, L.moe.gate.data(), E);
      y.assign(size_t(T) * H, 0.0);
      std::vector<std::vector<double>> wt(T, std::vector<double>(E, 0.0));  // dense routing weights
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(E), ch(E);
        for (int e = 0; e < E; ++e) {
          s[e] = 1 / (1 + std::exp(-logits[size_t(t) * E + e]));
          ch[e] = s[e] + (L.moe.bias.empty() ? 0 : L.moe.bias[e]);
        }
        std::vector<double> gs(G);
        for (int g = 0; g < G; ++g) {
          std::vector<double> v(ch.begin() + g * per, ch.begin() + (g + 1) * per);
          std::sort(v.rbegin(), v.rend());
          gs[g] = v[0] + v[1];
        }
        std::vector<int> go(G);
        std::iota(go.begin(), go.end(), 0);
        std::sort(go.begin(), go.end(), [&](int a, int b) { return gs[a] > gs[b]; });
        std::vector<double> masked(E, 0.0);
        for (int k = 0; k < c.topk_group; ++k)
          for (int e = go[k] * per; e < (go[k] + 1) * per; ++e) masked[e] = ch[e];
        std::vector<int> eo(E);
        std::iota(eo.begin(), eo.end(), 0);
        std::sort(eo.begin(), eo.end(), [&](int a, int b) { return masked[a] > masked[b]; });
        double sum = 0;
        for (int k = 0; k < K; ++k) sum += s[eo[k]];
        for (int k = 0; k < K; ++k)
          wt[t][eo[k]] =
              s[eo[k]] / (c.norm_topk_prob ? sum + 1e-20 : 1.0) * c.routed_scaling_factor;
      }
      for (int e = 0; e < E; ++e) {
        Mat out = ref_mlp(L.moe.local[e], x, T, H);
        for (int t = 0; t < T; ++t)
          if (wt[t][e] != 0)
            for (int i = 0; i < H; ++i) y[size_t(t) * H + i] += wt[t][e] * out[size_t(t) * H + i];
      }
      if (L.moe.has_shared) {
        Mat sh = ref_mlp(L.moe.shared, x, T, H);
        for (size_t i = 0; i < y.size(); ++i) y[i] += sh[i];
      }
    }
    for (size_t i = 0; i < h.size(); ++i) h[i] += y[i];
  }
  rms(h, T, H, w.norm, eps);
  return lin(h, T, H, w.lm_head.data(), c.vocab_size);
}

}  // namespace dpep::testing
