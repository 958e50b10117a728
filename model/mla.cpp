#include "model/mla.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model/ops/attention_bf16.h"
#include "model/ops/attention_kernel.h"
#include "model/ops/dtypes.h"
#include "model/ops/ops.h"
#include "model/ops/parallel.h"

namespace dpep {
namespace {

// float32 cache (exact mode). Prefill chunks: query blocks of this many rows of one sequence go
// through sgemm over each cache page (M = rows * heads is large enough for GEMM efficiency);
// shorter work uses the per-row kernel, which loads each cached value once for all heads.
constexpr int kGemmRows = 16;
constexpr int kQueryBlock = 64;

// qc: [tq, heads, W] (scaled); out_lat: [tq, heads, kv_lora]. Rows q0.. of sequence s.
// The sequence's pages are first gathered into one [W, L] block so that each product is one
// large GEMM (per-page GEMMs with N = page_size spend their time packing the queries).
void attend_block_gemm(const KvCacheView& kv, int layer, const SequenceSlice& s, int q0, int tq,
                       int heads, int kv_lora, const float* qc, float* out_lat,
                       std::vector<float>& scores, std::vector<float>& keys) {
  const int W = kv.width, ps = kv.page_size;
  const int L = s.start_pos + q0 + tq;  // keys visible to the block's last row
  const int M = tq * heads;
  keys.resize(static_cast<size_t>(W) * L);  // [W, L]
  for (int p = 0; p * ps < L; ++p) {
    const int n = std::min(ps, L - p * ps);
    const float* page = kv.page(layer, s.block_table[p]);
    for (int b = 0; b * KvCacheView::kSlotBlock < n; ++b) {
      const int m = std::min(KvCacheView::kSlotBlock, n - b * KvCacheView::kSlotBlock);
      const float* block = page + static_cast<size_t>(b) * W * KvCacheView::kSlotBlock;
      for (int d = 0; d < W; ++d)
        std::memcpy(&keys[static_cast<size_t>(d) * L + p * ps + b * KvCacheView::kSlotBlock],
                    block + static_cast<size_t>(d) * KvCacheView::kSlotBlock, sizeof(float) * m);
    }
  }
  scores.resize(static_cast<size_t>(M) * L);
  // scores[t*heads + h, k] = qc[t, h, :] . key[k, :]
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, L, W, 1.0f, qc, W, keys.data(), L, 0.0f,
              scores.data(), L);
  for (int t = 0; t < tq; ++t) {
    const int visible = s.start_pos + q0 + t + 1;  // causal
    for (int h = 0; h < heads; ++h) {
      float* row = scores.data() + static_cast<size_t>(t * heads + h) * L;
      softmax_fast(row, visible);
      std::fill(row + visible, row + L, 0.0f);
    }
  }
  // out_lat[t*heads + h, :] = sum_k p[k] * latent[k, :kv_lora]   (keys^T rows [0, kv_lora))
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, kv_lora, L, 1.0f, scores.data(), L,
              keys.data(), L, 0.0f, out_lat, kv_lora);
}

// float32 cache: per-row kernel for decode rows and short chunks, sgemm blocks for long chunks.
void attend_f32(const KvCacheView& kv, int layer, const ForwardBatch& batch, int nh, int kvl,
                const float* qc, float* out_lat, RunState::Mla& rs) {
  const int W = kv.width;
  // Work items: (seq index, first row, rows); rows > 1 means a GEMM block.
  std::vector<RunState::Mla::Item>& work = rs.items;
  work.clear();
  for (int si = 0; si < static_cast<int>(batch.seqs.size()); ++si) {
    const int n = batch.seqs[si].num_rows;
    if (n >= kGemmRows) {
      for (int r = 0; r < n; r += kQueryBlock)
        work.push_back({si, r, std::min(kQueryBlock, n - r)});
    } else {
      for (int r = n - 1; r >= 0; --r) work.push_back({si, r, 1});
    }
  }
  parallel_for_dynamic(static_cast<int>(work.size()), true, [&](int i) {
    RunState::Mla::Thread& th = rs.threads[omp_get_thread_num()];
    std::vector<float>& scratch = th.scratch;
    std::vector<float>& keys = th.keys;
    std::vector<const float*>& pages = th.pages;
    {
      const SequenceSlice& s = batch.seqs[work[i].seq];
      const int r = work[i].row, L = s.start_pos + r + 1;  // causal: keys [0, pos]
      const size_t row = static_cast<size_t>(s.row_begin + r) * nh;
      if (work[i].rows > 1) {
        attend_block_gemm(kv, layer, s, r, work[i].rows, nh, kvl, &qc[row * W], &out_lat[row * kvl],
                          scratch, keys);
        return;
      }
      const int np = (L + kv.page_size - 1) / kv.page_size;
      pages.resize(np);
      for (int p = 0; p < np; ++p) pages[p] = kv.page(layer, s.block_table[p]);
      scratch.resize(RunState::attend_row_floats(kvl, W, L));
      mla_attend_row(&qc[row * W], nh, W, kvl, pages.data(), kv.page_size, L, &out_lat[row * kvl],
                     scratch.data());
    }
  });
}

// bf16 cache: one flash-attention kernel for decode rows and prefill chunks alike (AMX tiles),
// in query blocks of ~256 rows; results do not depend on the chunking (attention_bf16.h).
void attend_bf16(const KvCacheView& kv, int layer, const ForwardBatch& batch, int nh, int kvl,
                 const float* qc, float* out_lat, RunState::Mla& rs) {
  MlaAttnWorkspace& ws = rs.bf16;
  std::vector<MlaQueryBlock>& blocks = rs.blocks;
  const int W = kv.width, qt = mla_query_block_tokens(nh);
  blocks.clear();
  for (const auto& s : batch.seqs)
    for (int r = 0; r < s.num_rows; r += qt) {
      const size_t row = static_cast<size_t>(s.row_begin + r) * nh;
      blocks.push_back({qc + row * W, out_lat + row * kvl, std::min(qt, s.num_rows - r),
                        s.start_pos + r, s.block_table});
    }
  const MlaBf16Pages pages{reinterpret_cast<const uint16_t*>(kv.page(layer, 0)),
                           kv.page_floats() * 2, kv.page_size, KvCacheView::bf16_row_stride(W)};
  mla_attention_bf16({nh, W, kvl}, pages, blocks.data(), static_cast<int>(blocks.size()), ws);
}

}  // namespace

void pack_mla_bf16(const ModelConfig& c, MlaWeights& w) {
  const int nh = static_cast<int>(c.num_attention_heads),
            nope = static_cast<int>(c.qk_nope_head_dim);
  const int vd = static_cast<int>(c.v_head_dim), kvl = static_cast<int>(c.kv_lora_rank);
  const float scale = static_cast<float>(c.softmax_scale());
  // kv_b as exact float32 for the packing (dequantised when stored bf16 or FP8); freed after,
  // since the bf16 mode reads only the per-head copies.
  std::vector<float> buf;
  const float* kvb = w.kv_b_proj.rows_f32(0, w.kv_b_proj.out(), buf);
  // kv_b rows h*(nope+v) + d: d < nope is W_uk[h][d, :], the rest W_uv[h][d - nope, :].
  w.uk_absorb = pack_head_proj(nh, nope, kvl, [&](int h, int i, int o) {
    return scale * kvb[(static_cast<size_t>(h) * (nope + vd) + i) * kvl + o];
  });
  w.uv_absorb = pack_head_proj(nh, kvl, vd, [&](int h, int i, int o) {
    return kvb[(static_cast<size_t>(h) * (nope + vd) + nope + o) * kvl + i];
  });
  w.kv_b_proj = Linear();
  for (Linear* l : {&w.q_a_proj, &w.q_b_proj, &w.q_proj, &w.kv_a_proj_with_mqa, &w.o_proj})
    l->to_bf16();
  // q_a and kv_a read the same x: one product when q_a's rows fill whole tile pairs (and FP8
  // scale blocks). Each element is computed as the separate product computes it.
  const PackedWeight *qa = w.q_a_proj.packed(), *kva = w.kv_a_proj_with_mqa.packed();
  if (qa && kva && qa->dtype() == kva->dtype() && qa->n() % 32 == 0 &&
      (qa->dtype() != DType::F8E4M3 || qa->n() % 128 == 0)) {
    w.qkv_a = Linear(PackedWeight::concat_rows(*qa, *kva));
    w.qkv_a.to_bf16();
    w.q_a_proj = Linear();
    w.kv_a_proj_with_mqa = Linear();
  }
}

void mla_forward(const ModelConfig& c, const MlaWeights& w, const Rope& rope, int layer,
                 const float* x, const ForwardBatch& batch, const KvCacheView& kv, float* out,
                 RunState::Mla& rs) {
  const int T = batch.num_rows();
  const int H = static_cast<int>(c.hidden_size), nh = static_cast<int>(c.num_attention_heads);
  const int nope = static_cast<int>(c.qk_nope_head_dim), rd = static_cast<int>(c.qk_rope_head_dim);
  const int vd = static_cast<int>(c.v_head_dim), kvl = static_cast<int>(c.kv_lora_rank);
  const int qd = nope + rd, W = kvl + rd;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (kv.width != W) throw std::logic_error("KV cache width does not match kv_lora + rope");
  if (kv.bf16 && kv.kv_lora != kvl) throw std::logic_error("bf16 KV cache shape mismatch");
  if (kv.page_size % KvCacheView::kSlotBlock != 0)
    throw std::logic_error("KV page size must be a multiple of 16");
  if (T == 0) return;

  // q = q_b(rmsnorm(q_a(x)))  [T, nh, nope+rope]
  // Buffers of the run-state (grow-only: no allocation once warm).
  float* q = fit(rs.q, static_cast<size_t>(T) * nh * qd);
  float* ckv = fit(rs.ckv, static_cast<size_t>(T) * W);  // kv_a(x) [T, kv_lora + rope]
  if (!w.qkv_a.empty()) {
    // [T, q_lora | kv_lora + rope] in one product; q_a's part normed in place, kv_a's copied.
    const int ql = static_cast<int>(c.q_lora_rank), n = ql + W;
    float* qkv = fit(rs.qkv, static_cast<size_t>(T) * n);
    w.qkv_a.forward(x, T, qkv, -1, -1, &rs.gemm);
    for (int t = 0; t < T; ++t)
      std::memcpy(&ckv[static_cast<size_t>(t) * W], &qkv[static_cast<size_t>(t) * n + ql],
                  sizeof(float) * W);
    rmsnorm_rows(qkv, T, ql, w.q_a_layernorm.data(), eps, n);
    w.q_b_proj.forward(qkv, T, q, n, -1, &rs.gemm);
  } else if (c.q_lora_rank > 0) {
    const int ql = static_cast<int>(c.q_lora_rank);
    float* qa = fit(rs.qa, static_cast<size_t>(T) * ql);
    w.q_a_proj.forward(x, T, qa, -1, -1, &rs.gemm);
    rmsnorm_rows(qa, T, ql, w.q_a_layernorm.data(), eps);
    w.q_b_proj.forward(qa, T, q, -1, -1, &rs.gemm);
  } else {
    w.q_proj.forward(x, T, q, -1, -1, &rs.gemm);
  }
  if (w.qkv_a.empty()) w.kv_a_proj_with_mqa.forward(x, T, ckv, -1, -1, &rs.gemm);
  // c = rmsnorm(ckv[:kv_lora]); k_pe = rope(ckv[kv_lora:])
  rmsnorm_rows(ckv, T, kvl, w.kv_a_layernorm.data(), eps, W);
  for (int t = 0; t < T; ++t) {
    rope.apply(&ckv[static_cast<size_t>(t) * W + kvl], 1, rd, batch.positions[t]);
    rope.apply(&q[static_cast<size_t>(t) * nh * qd + nope], nh, qd, batch.positions[t]);
  }
  // Store this batch's latents in the cache before attending (a row attends to itself).
  for (const auto& s : batch.seqs) {
    for (int i = 0; i < s.num_rows; ++i) {
      const int pos = s.start_pos + i;
      const int blk = pos / kv.page_size;
      if (blk >= s.num_blocks)
        throw std::logic_error("sequence block table too short for its position");
      kv.store(layer, s.block_table[blk], pos % kv.page_size,
               &ckv[static_cast<size_t>(s.row_begin + i) * W]);
    }
  }
  // qc[t,h,:] = [q_nope[t,h] . W_uk[h] | q_pe[t,h]] * softmax_scale   [T, nh, W]
  // q_nope[t,h,nope] x W_uk[h][nope, kv_lora] -> q_lat[t,h,kv_lora]
  const float scale = static_cast<float>(c.softmax_scale());
  float* qc = fit(rs.qc, static_cast<size_t>(T) * nh * W);
  const bool packed = !w.uv_absorb.empty();
  // Float32 mode: kv_b rows of one head at a time (dequantised when stored bf16 or FP8).
  std::vector<float>& kvb_buf = rs.kvb;
  if (packed) head_proj_bf16(w.uk_absorb, q, T, nh * qd, qd, qc, nh * W, W, rs.head_gemm.data());
  for (int h = 0; h < nh && !packed; ++h) {
    const float* kvb_h = w.kv_b_proj.rows_f32(h * (nope + vd), nope, kvb_buf);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, kvl, nope, scale, &q[h * qd], nh * qd,
                kvb_h, kvl, 0.0f, &qc[h * W], nh * W);
  }
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < nh; ++h) {
      const float* src = &q[(static_cast<size_t>(t) * nh + h) * qd + nope];
      float* dst = &qc[(static_cast<size_t>(t) * nh + h) * W + kvl];
      for (int i = 0; i < rd; ++i) dst[i] = src[i] * scale;
    }
  // Attention per query row over its sequence's cached positions: out_lat [T, nh, kv_lora]
  float* out_lat = fit(rs.out_lat, static_cast<size_t>(T) * nh * kvl);
  if (kv.bf16)
    attend_bf16(kv, layer, batch, nh, kvl, qc, out_lat, rs);
  else
    attend_f32(kv, layer, batch, nh, kvl, qc, out_lat, rs);
  // out_lat[t,h,kv_lora] x W_uv[h][v, kv_lora]^T -> attn[t,h,v]
  float* attn = fit(rs.attn, static_cast<size_t>(T) * nh * vd);
  if (packed)
    head_proj_bf16(w.uv_absorb, out_lat, T, nh * kvl, kvl, attn, nh * vd, vd, rs.head_gemm.data());
  for (int h = 0; h < nh && !packed; ++h) {
    const float* uv_h = w.kv_b_proj.rows_f32(h * (nope + vd) + nope, vd, kvb_buf);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, vd, kvl, 1.0f, &out_lat[h * kvl],
                nh * kvl, uv_h, kvl, 0.0f, &attn[h * vd], nh * vd);
  }
  w.o_proj.forward(attn, T, out, -1, -1, &rs.gemm);
  (void)H;
}

}  // namespace dpep
