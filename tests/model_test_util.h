// Test helpers: random in-memory weights for any config, a naive (non-absorbed, no cache)
// reference forward written straight from the spec, and a trivially paged KV cache.
#pragma once
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/mlp.h"
#include "model/model.h"

namespace dpep::testing {

inline std::vector<float> randn(size_t n, float std, std::mt19937& g, float mean = 0.0f) {
  std::normal_distribution<float> d(mean, std);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline ModelWeights random_weights(const ModelConfig& c, uint32_t seed,
                                   const ExpertShard& shard = {}) {
  std::mt19937 g(seed);
  const int H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads;
  const int qd = c.qk_head_dim(), kvl = c.kv_lora_rank, rd = c.qk_rope_head_dim;
  auto lin = [&](int out, int in) { return Linear(randn(size_t(out) * in, 0.1f, g), out, in); };
  auto mlp = [&](int I) {
    auto gt = randn(size_t(I) * H, 0.1f, g), up = randn(size_t(I) * H, 0.1f, g),
         dn = randn(size_t(I) * H, 0.1f, g);
    return make_mlp(gt.data(), up.data(), dn.data(), I, H);
  };
  ModelWeights w;
  w.embed_tokens = Embedding::from_f32(randn(size_t(V) * H, 1.0f, g), V, H);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights L;
    L.input_layernorm = randn(H, 0.1f, g, 1.0f);
    L.post_attention_layernorm = randn(H, 0.1f, g, 1.0f);
    if (c.q_lora_rank > 0) {
      L.attn.q_a_proj = lin(c.q_lora_rank, H);
      L.attn.q_a_layernorm = randn(c.q_lora_rank, 0.1f, g, 1.0f);
      L.attn.q_b_proj = lin(nh * qd, c.q_lora_rank);
    } else {
      L.attn.q_proj = lin(nh * qd, H);
    }
    L.attn.kv_a_proj_with_mqa = lin(kvl + rd, H);
    L.attn.kv_a_layernorm = randn(kvl, 0.1f, g, 1.0f);
    L.attn.kv_b_proj = lin(nh * (c.qk_nope_head_dim + c.v_head_dim), kvl);
    L.attn.o_proj = lin(H, nh * c.v_head_dim);
    L.is_moe = c.is_moe_layer(l);
    if (!L.is_moe) {
      L.mlp = mlp(c.intermediate_size);
    } else {
      const int E = c.n_routed_experts;
      const comm::ExpertPlacement placement = shard.placement(E);
      L.moe.gate = randn(size_t(E) * H, 0.3f, g);
      L.moe.bias = randn(E, 0.05f, g);
      // Draw every expert so that all shards of one seed hold the same weights.
      for (int e = 0; e < E; ++e) {
        auto m = mlp(c.moe_intermediate_size);
        if (placement.owner(e) == shard.rank) L.moe.local.push_back(std::move(m));
      }
      L.moe.first_local = placement.first_local(shard.rank);
      L.moe.placement = placement;
      if (c.n_shared_experts > 0) {
        L.moe.has_shared = true;
        L.moe.shared = mlp(c.moe_intermediate_size * c.n_shared_experts);
      }
    }
    w.layers.push_back(std::move(L));
  }
  w.norm = randn(H, 0.1f, g, 1.0f);
  w.lm_head = lin(V, H);
  return w;
}

// A cache with pages handed out in order; one block table per sequence.
struct SimpleCache {
  std::vector<float> data;
  KvCacheView view;
  std::vector<std::vector<int>> tables;
  int next_page = 0;
  SimpleCache(const ModelConfig& c, int num_pages, int page_size, bool bf16 = false) {
    view.num_layers = c.num_hidden_layers;
    view.num_pages = num_pages;
    view.page_size = page_size;
    view.width = c.kv_lora_rank + c.qk_rope_head_dim;
    view.bf16 = bf16;
    view.kv_lora = c.kv_lora_rank;
    // NaN everywhere (as bit patterns for bf16 too): a read of an unwritten slot shows up.
    data.assign(size_t(view.num_layers) * num_pages * view.page_floats(), NAN);
    view.data = data.data();
  }
  int new_seq() {
    tables.emplace_back();
    return int(tables.size()) - 1;
  }
  void ensure(int seq, int len) {
    while (int(tables[seq].size()) * view.page_size < len) tables[seq].push_back(next_page++);
  }
};

// Batch for one sequence: tokens at positions start.. ; logits for the given rows.
inline ForwardBatch one_seq_batch(SimpleCache& cache, int seq, const std::vector<int>& tokens,
                                  int start, std::vector<int> logits_rows) {
  ForwardBatch b;
  b.token_ids = tokens;
  for (int i = 0; i < int(tokens.size()); ++i) b.positions.push_back(start + i);
  cache.ensure(seq, start + int(tokens.size()));
  b.seqs.push_back(SequenceSlice{0, int(tokens.size()), start, cache.tables[seq].data(),
                                 int(cache.tables[seq].size())});
  b.logits_rows = std::move(logits_rows);
  return b;
}

// Several whole prompts as one batch: one new sequence each from position 0, logits at each
// prompt's last row (in prompt order).
inline ForwardBatch prompts_batch(SimpleCache& cache,
                                  const std::vector<std::vector<int>>& prompts) {
  ForwardBatch b;
  for (const auto& p : prompts) {
    const int s = cache.new_seq();
    cache.ensure(s, p.size());
    const int begin = b.num_rows();
    for (int i = 0; i < int(p.size()); ++i) {
      b.token_ids.push_back(p[i]);
      b.positions.push_back(i);
    }
    b.seqs.push_back(
        {begin, int(p.size()), 0, cache.tables[s].data(), int(cache.tables[s].size())});
    b.logits_rows.push_back(b.num_rows() - 1);
  }
  return b;
}

// The next greedy decode step of sequences 0..n-1 (n = pos.size(); sequence s at position
// pos[s], its last logits in row s of `logits`), rebuilt in place in `b` so that its vectors
// keep their capacity (no allocation once warm). Advances pos.
inline void greedy_decode_batch(const float* logits, int vocab, SimpleCache& cache,
                                std::vector<int>& pos, ForwardBatch& b) {
  b.token_ids.clear();
  b.positions.clear();
  b.seqs.clear();
  b.logits_rows.clear();
  for (int s = 0; s < int(pos.size()); ++s) {
    const float* lg = logits + static_cast<size_t>(s) * vocab;
    int best = 0;
    for (int v = 1; v < vocab; ++v)
      if (lg[v] > lg[best]) best = v;
    b.token_ids.push_back(best);
    b.positions.push_back(pos[s]);
    b.seqs.push_back({s, 1, pos[s], cache.tables[s].data(), int(cache.tables[s].size())});
    b.logits_rows.push_back(s);
    ++pos[s];
  }
}

}  // namespace dpep::testing
