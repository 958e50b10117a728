// Flash attention over the one-copy bf16 latent cache (see attention_bf16.h for the contract,
// attention_amx.h for the tile layouts).
//
// Why one copy suffices: the cache keeps a token's latent as one row [kv_lora | rope] (row-major
// [slot][dim]). Scores are computed transposed, S^T[key, row] = K Q^T, so the cached rows are
// the A operand exactly as stored (16 keys x 32 dims per tile) and only the small query side is
// put in VNNI pairs, once per query block. For P V the values must be the B operand in pairs of
// keys; each split's kv_lora columns are interleaved by pairs of slots into per-thread scratch
// (two loads and two permutes per 32 dims of a key pair) and reused by every 16-row block of
// the query block. The score tile comes out as [key][row]; the probabilities are transposed to
// [row][key] (small: rows x keys, not x dims) to be the A operand of P V.
#include "model/ops/attention_bf16.h"
#include "model/ops/parallel.h"

// GCC 12 reports _mm512_undefined_ps() inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/ops/attention_amx.h"
#include "model/ops/dtypes.h"

#if defined(__AVX512BF16__)
#include <immintrin.h>

#include "model/ops/simd_exp.h"
#endif

namespace dpep {

int mla_query_block_tokens(int heads) {
  return std::max(1, 256 / std::max(1, heads));
}

#if defined(__AVX512BF16__)
namespace {

// ---- AVX512-BF16 backend: the same products with heads (scores) or dims (values) in lanes.
void avx_scores(const uint16_t* qv, int nc, const uint16_t* const* ktile, int nkt, int row_stride,
                float* st) {
  // Eight keys at a time: eight independent accumulators share each query load.
  for (int k0 = 0; k0 < nkt * 16; k0 += 8) {
    const uint16_t* key[8];
    for (int u = 0; u < 8; ++u)
      key[u] = ktile[(k0 + u) / 16] + static_cast<size_t>((k0 + u) % 16) * row_stride;
    __m512 acc[8];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int j = 0; j < nc * 16; ++j) {  // pair j of dims: 32-bit word j of a key row
      const __m512bh qj = (__m512bh)_mm512_loadu_si512(qv + static_cast<size_t>(j) * 32);
      for (int u = 0; u < 8; ++u) {
        uint32_t w;
        std::memcpy(&w, key[u] + 2 * j, 4);
        acc[u] = _mm512_dpbf16_ps(acc[u], qj, (__m512bh)_mm512_set1_epi32(static_cast<int>(w)));
      }
    }
    for (int u = 0; u < 8; ++u) _mm512_storeu_ps(st + static_cast<size_t>(k0 + u) * 16, acc[u]);
  }
}

void avx_pv(const uint16_t* pa, int nkt32, const uint16_t* vv, int kvp, float* o) {
  for (int d = 0; d < kvp; d += 16) {
    __m512 acc[16];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int p = 0; p < nkt32 * 16; ++p) {
      const __m512bh v = (__m512bh)_mm512_loadu_si512(vv + (static_cast<size_t>(p) * kvp + d) * 2);
      const uint16_t* prow = pa + static_cast<size_t>(p / 16) * 512 + (p % 16) * 2;
      for (int i = 0; i < 16; ++i) {
        uint32_t w;
        std::memcpy(&w, prow + i * 32, 4);
        acc[i] = _mm512_dpbf16_ps(acc[i], v, (__m512bh)_mm512_set1_epi32(static_cast<int>(w)));
      }
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(o + static_cast<size_t>(i) * kvp + d, acc[i]);
  }
}

using ScoresFn = void (*)(const uint16_t*, int, const uint16_t* const*, int, int, float*);
using PvFn = void (*)(const uint16_t*, int, const uint16_t*, int, float*);
struct Backend {
  ScoresFn scores;
  PvFn pv;
};

// The AMX backend is opt-in (DPEP_ATTENTION_AMX=1) until it has run on an AMX machine: this
// project's current machine (AMD EPYC, Zen 4) has AVX512-BF16 but no tiles, so only the
// AVX512-BF16 backend is verified here. test_attention_kernel checks AMX where the CPU has it.
Backend& backend() {
  static Backend b = [] {
    const char* env = std::getenv("DPEP_ATTENTION_AMX");
    const bool want = env && std::string(env) == "1";
    return want && attn::amx_init() ? Backend{attn::amx_scores, attn::amx_pv}
                                    : Backend{avx_scores, avx_pv};
  }();
  return b;
}

inline int round_up(int x, int m) {
  return (x + m - 1) / m * m;
}

// Everything a split needs about the shape and the cache.
struct Ctx {
  MlaAttnShape s;
  MlaBf16Pages kv;
  int nc;   // 32-dim chunks of a row (row_stride / 32)
  int kvp;  // kv_lora rounded up to 16 (tile columns)
  const uint16_t* row(const int* bt, int k) const {
    return kv.base + static_cast<size_t>(bt[k / kv.page_size]) * kv.page_elems +
           static_cast<size_t>(k % kv.page_size) * kv.row_stride;
  }
};

// In-register transpose of 16 x 16 dwords: r[i] element c -> r[c] element i. Four butterfly
// stages; stage s swaps the (rows i, columns c + s) and (rows i + s, columns c) blocks.
inline void transpose16_epi32(__m512i r[16]) {
  for (int s = 8; s >= 1; s /= 2) {
    alignas(64) int lo[16], hi[16];
    for (int c = 0; c < 16; ++c) {
      lo[c] = (c & s) ? 16 + c - s : c;
      hi[c] = (c & s) ? 16 + c : c + s;
    }
    const __m512i il = _mm512_load_si512(lo), ih = _mm512_load_si512(hi);
    for (int i = 0; i < 16; ++i) {
      if (i & s) continue;
      const __m512i a = r[i], b = r[i + s];
      r[i] = _mm512_permutex2var_epi32(a, il, b);
      r[i + s] = _mm512_permutex2var_epi32(a, ih, b);
    }
  }
}

// Queries of a block in VNNI tiles: qv[b][c] = [16 dim pairs][16 rows][2], zero past the rows
// and past width. Per 32-dim chunk: 16 rows rounded to bf16 (a row's dword j is its pair j),
// then transposed so that vector j holds pair j of the 16 rows.
void pack_queries(const Ctx& x, const MlaQueryBlock& q, uint16_t* qv) {
  const int M = q.tq * x.s.heads, nb = (M + 15) / 16, W = x.s.width;
  for (int b = 0; b < nb; ++b)
    for (int c = 0; c < x.nc; ++c) {
      const int d0 = c * 32, live = std::clamp(W - d0, 0, 32);
      const __mmask16 m0 = live >= 16 ? 0xffff : static_cast<__mmask16>((1u << live) - 1);
      const __mmask16 m1 = live >= 32   ? 0xffff
                           : live <= 16 ? 0
                                        : static_cast<__mmask16>((1u << (live - 16)) - 1);
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int g = b * 16 + i;
        if (g >= M) {
          r[i] = _mm512_setzero_si512();
          continue;
        }
        const float* src = q.qc + static_cast<size_t>(g) * W + d0;
        r[i] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16),
                                            _mm512_maskz_loadu_ps(m0, src));
      }
      transpose16_epi32(r);
      uint16_t* tile = qv + (static_cast<size_t>(b) * x.nc + c) * 512;
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(tile + j * 32, r[j]);
    }
}

// Values of keys [k0, k0 + n) as [key pair][kvp][2], zero-padded to a multiple of 32 keys and
// past kv_lora.
void pack_values(const Ctx& x, const int* bt, int k0, int n, uint16_t* vv) {
  const int kvl = x.s.kv_lora, kvp = x.kvp;
  static const __m512i lo = [] {
    alignas(64) uint16_t i[32];
    for (int e = 0; e < 16; ++e) i[2 * e] = e, i[2 * e + 1] = 32 + e;
    return _mm512_load_si512(i);
  }();
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  for (int p = 0; p < round_up(n, 32) / 2; ++p) {
    const uint16_t* ra = 2 * p < n ? x.row(bt, k0 + 2 * p) : nullptr;
    const uint16_t* rb = 2 * p + 1 < n ? x.row(bt, k0 + 2 * p + 1) : nullptr;
    uint16_t* dst = vv + static_cast<size_t>(p) * kvp * 2;
    for (int d = 0; d < kvp; d += 32) {
      const int live = std::clamp(kvl - d, 0, 32);
      const __mmask32 m = live >= 32 ? 0xffffffffu : (1u << live) - 1;
      const __m512i a = ra ? _mm512_maskz_loadu_epi16(m, ra + d) : _mm512_setzero_si512();
      const __m512i b = rb ? _mm512_maskz_loadu_epi16(m, rb + d) : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + 2 * d, _mm512_permutex2var_epi16(a, lo, b));
      if (d + 16 < kvp) _mm512_storeu_si512(dst + 2 * d + 32, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
}

// Partial result of one split for one 16-row block: keys [k0, kb1), rows at positions pos[i]
// (-1: padding). Writes os [16][kvp] (unnormalised), ms, ls.
void rowblock_partial(const Ctx& x, const int* bt, const uint16_t* qv, const int* pos, int k0,
                      int kb1, const uint16_t* vv, MlaAttnWorkspace::Thread& t) {
  const int n = kb1 - k0, nkt = (n + 15) / 16, nkt32 = (n + 31) / 32;
  const uint16_t* ktile[kMlaKeySplit / 16];
  for (int i = 0; i < nkt; ++i) ktile[i] = x.row(bt, k0 + 16 * i);
  float* st = t.st.data();
  backend().scores(qv, x.nc, ktile, nkt, x.kv.row_stride, st);
  const __m512i posv = _mm512_loadu_si512(pos);
  __m512 mv = _mm512_set1_ps(-INFINITY);
  for (int k = 0; k < nkt * 16; ++k) {
    const __mmask16 valid = _mm512_cmpge_epi32_mask(posv, _mm512_set1_epi32(k0 + k));
    mv = _mm512_mask_max_ps(mv, valid, mv, _mm512_loadu_ps(st + static_cast<size_t>(k) * 16));
  }
  __m512 lv = _mm512_setzero_ps();
  uint16_t* pt = t.pt.data();  // [key][row]
  for (int k = 0; k < nkt * 16; ++k) {
    const __mmask16 valid = _mm512_cmpge_epi32_mask(posv, _mm512_set1_epi32(k0 + k));
    const __m512 e =
        _mm512_maskz_mov_ps(valid, exp16(_mm512_sub_ps(_mm512_loadu_ps(st + k * 16), mv)));
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pt + k * 16), h);
    // The sum is of the rounded probabilities, the ones P V multiplies.
    lv = _mm512_add_ps(lv, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
  std::memset(pt + nkt * 16 * 16, 0, static_cast<size_t>(nkt32 * 32 - nkt * 16) * 16 * 2);
  uint16_t* pa = t.pa.data();  // [tile][row][32 keys]
  for (int kt = 0; kt < nkt32; ++kt)
    for (int kk = 0; kk < 32; ++kk) {
      const uint16_t* src = pt + (kt * 32 + kk) * 16;
      for (int i = 0; i < 16; ++i) pa[(kt * 16 + i) * 32 + kk] = src[i];
    }
  backend().pv(pa, nkt32, vv, x.kvp, t.os.data());
  _mm512_storeu_ps(t.ms.data(), mv);
  _mm512_storeu_ps(t.ls.data(), lv);
}

// Left-to-right merge of a split's partial (m, l, o) into a row's running (M, L, A). Kept out of
// line so that every caller runs the same instructions.
[[gnu::noinline]] void merge_row(bool first, float m, float l, const float* o, int kvp, float& M,
                                 float& L, float* A) {
  if (first) {
    M = m, L = l;
    std::memcpy(A, o, sizeof(float) * kvp);
    return;
  }
  const float mn = std::max(M, m);
  const float a = std::exp(M - mn), b = std::exp(m - mn);
  M = mn;
  L = a * L + b * l;
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (int d = 0; d < kvp; d += 16)
    _mm512_storeu_ps(A + d, _mm512_fmadd_ps(va, _mm512_loadu_ps(A + d),
                                            _mm512_mul_ps(vb, _mm512_loadu_ps(o + d))));
}

[[gnu::noinline]] void finish_row(float L, const float* A, int kvl, float* out) {
  const float inv = 1.0f / L;
  for (int d = 0; d < kvl; ++d) out[d] = A[d] * inv;
}

void ensure_thread(const Ctx& x, int max_rows, MlaAttnWorkspace::Thread& t) {
  const int nb = (max_rows + 15) / 16;
  auto grow = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(t.qv, static_cast<size_t>(nb) * x.nc * 512);
  grow(t.vv, static_cast<size_t>(kMlaKeySplit) * x.kvp);
  grow(t.st, static_cast<size_t>(kMlaKeySplit) * 16);
  grow(t.pt, static_cast<size_t>(kMlaKeySplit) * 16);
  grow(t.pa, static_cast<size_t>(kMlaKeySplit) * 16);
  grow(t.os, static_cast<size_t>(16) * x.kvp);
  grow(t.ms, 16);
  grow(t.ls, 16);
  grow(t.acc, static_cast<size_t>(nb) * 16 * x.kvp);
  grow(t.accm, static_cast<size_t>(nb) * 16);
  grow(t.accl, static_cast<size_t>(nb) * 16);
}

int num_splits(const MlaQueryBlock& q) {
  return (q.pos0 + q.tq + kMlaKeySplit - 1) / kMlaKeySplit;
}

// Positions of the 16 rows of row block b (-1 past the block's rows); returns the largest.
int row_positions(const MlaQueryBlock& q, int heads, int b, int* pos) {
  int mx = -1;
  for (int i = 0; i < 16; ++i) {
    const int g = b * 16 + i;
    pos[i] = g < q.tq * heads ? q.pos0 + g / heads : -1;
    mx = std::max(mx, pos[i]);
  }
  return mx;
}

// Split s of block q (its queries packed in qv) for every row block; emit(b, i, row g) is
// called for each row that sees the split, with the partial in t.os / t.ms / t.ls.
template <typename Emit>
void run_split(const Ctx& x, const MlaQueryBlock& q, const uint16_t* qv, int s,
               MlaAttnWorkspace::Thread& t, Emit&& emit) {
  const int M = q.tq * x.s.heads, nb = (M + 15) / 16;
  const int k0 = s * kMlaKeySplit, k1 = std::min(k0 + kMlaKeySplit, q.pos0 + q.tq);
  pack_values(x, q.block_table, k0, k1 - k0, t.vv.data());
  alignas(64) int pos[16];
  for (int b = 0; b < nb; ++b) {
    const int mx = row_positions(q, x.s.heads, b, pos);
    if (mx < k0) continue;
    rowblock_partial(x, q.block_table, qv + static_cast<size_t>(b) * x.nc * 512, pos, k0,
                     std::min(k1, mx + 1), t.vv.data(), t);
    for (int i = 0; i < 16; ++i)
      if (pos[i] >= k0) emit(b, i, b * 16 + i);
  }
}

}  // namespace
#endif

void MlaAttnWorkspace::reserve_decode(const MlaAttnShape& shape, int max_context) {
  const size_t splits =
      (static_cast<size_t>(std::max(max_context, 1)) + kMlaKeySplit - 1) / kMlaKeySplit;
  const size_t rec = static_cast<size_t>((shape.kv_lora + 15) / 16 * 16) + 2;  // o[kvp], m, l
  partial.reserve(splits * shape.heads * rec);
  items.reserve(splits);
  rows.reserve(shape.heads);
  offset.reserve(1);
  qv_offset.reserve(1);
  // One decode row's queries: ceil(heads / 16) row blocks of width / 32 VNNI tiles.
  qv.reserve(static_cast<size_t>((shape.heads + 15) / 16) * ((shape.width + 31) / 32) * 512);
}

void mla_attention_bf16(const MlaAttnShape& shape, const MlaBf16Pages& kv,
                        const MlaQueryBlock* blocks, int n, MlaAttnWorkspace& ws) {
#if defined(__AVX512BF16__)
  if (kv.page_size % 16 != 0 || kv.row_stride % 32 != 0 || kv.row_stride < shape.width ||
      shape.kv_lora > shape.width)
    throw std::logic_error("mla_attention_bf16: cache geometry does not fit the kernel");
  const Ctx x{shape, kv, kv.row_stride / 32, round_up(shape.kv_lora, 16)};
  const int nthreads = omp_get_max_threads();
  if (static_cast<int>(ws.threads.size()) < nthreads) ws.threads.resize(nthreads);
  int max_rows = 0, total_splits = 0;
  for (int i = 0; i < n; ++i) {
    max_rows = std::max(max_rows, blocks[i].tq * shape.heads);
    total_splits += num_splits(blocks[i]);
  }
  for (auto& t : ws.threads) ensure_thread(x, max_rows, t);
  const size_t rec = static_cast<size_t>(x.kvp) + 2;  // partial record: o[kvp], m, l
  // Split mode when blocks alone cannot keep the threads busy (e.g. one long decode row): the
  // threads take (block, split) pairs and keep partials, merged afterwards. The arithmetic is
  // the same as block mode's, so the results are bitwise identical.
  size_t partial_floats = 0;
  // Threads only for work worth a parallel region (multiply-adds; ~1M is ~10 us here).
  double work = 0;
  for (int i = 0; i < n; ++i)
    work += static_cast<double>(blocks[i].tq) * shape.heads * (blocks[i].pos0 + blocks[i].tq) *
            (shape.width + shape.kv_lora);
  const bool par = work > 1e6;
  const bool split_mode = par && n < 2 * nthreads && total_splits > n && nthreads > 1;
  if (split_mode) {
    for (int i = 0; i < n; ++i)
      partial_floats += static_cast<size_t>(num_splits(blocks[i])) * blocks[i].tq * shape.heads;
    partial_floats *= rec;
    if (ws.partial.size() < partial_floats) ws.partial.resize(partial_floats);
  }
  if (!split_mode) {
    parallel_for_dynamic(n, par, [&](int i) {
      auto& t = ws.threads[omp_get_thread_num()];
      const MlaQueryBlock& q = blocks[i];
      pack_queries(x, q, t.qv.data());
      for (int s = 0; s < num_splits(q); ++s)
        run_split(x, q, t.qv.data(), s, t, [&](int, int r, int g) {
          merge_row(s == 0, t.ms[r], t.ls[r], t.os.data() + static_cast<size_t>(r) * x.kvp, x.kvp,
                    t.accm[g], t.accl[g], t.acc.data() + static_cast<size_t>(g) * x.kvp);
        });
      for (int g = 0; g < q.tq * shape.heads; ++g)
        finish_row(t.accl[g], t.acc.data() + static_cast<size_t>(g) * x.kvp, shape.kv_lora,
                   q.out + static_cast<size_t>(g) * shape.kv_lora);
    });
    return;
  }
  // Split mode: items (block, split), partial records at offset[block] + (split * rows + row).
  // Each block's queries are packed once, here, for all of its splits (ws.qv at qv_offset).
  auto& items = ws.items;
  auto& offset = ws.offset;
  items.clear();
  offset.resize(n);
  ws.qv_offset.resize(n);
  size_t off = 0, qoff = 0;
  for (int i = 0; i < n; ++i) {
    offset[i] = off;
    off += static_cast<size_t>(num_splits(blocks[i])) * blocks[i].tq * shape.heads * rec;
    ws.qv_offset[i] = qoff;
    qoff += static_cast<size_t>((blocks[i].tq * shape.heads + 15) / 16) * x.nc * 512;
    for (int s = 0; s < num_splits(blocks[i]); ++s) items.emplace_back(i, s);
  }
  if (ws.qv.size() < qoff) ws.qv.resize(qoff);
  for (int i = 0; i < n; ++i) pack_queries(x, blocks[i], ws.qv.data() + ws.qv_offset[i]);
  parallel_for_dynamic(static_cast<int>(items.size()), true, [&](int it) {
    auto& t = ws.threads[omp_get_thread_num()];
    const auto [i, s] = items[it];
    const MlaQueryBlock& q = blocks[i];
    const int M = q.tq * shape.heads;
    run_split(x, q, ws.qv.data() + ws.qv_offset[i], s, t, [&](int, int r, int g) {
      float* p = ws.partial.data() + offset[i] + (static_cast<size_t>(s) * M + g) * rec;
      std::memcpy(p, t.os.data() + static_cast<size_t>(r) * x.kvp, sizeof(float) * x.kvp);
      p[x.kvp] = t.ms[r];
      p[x.kvp + 1] = t.ls[r];
    });
  });
  auto& rows = ws.rows;  // (block, row)
  rows.clear();
  for (int i = 0; i < n; ++i)
    for (int g = 0; g < blocks[i].tq * shape.heads; ++g) rows.emplace_back(i, g);
  parallel_ranges(static_cast<int>(rows.size()), true, [&](int r_begin, int r_end, int) {
    auto& t = ws.threads[omp_get_thread_num()];
    for (int r = r_begin; r < r_end; ++r) {
      const auto [i, g] = rows[r];
      const MlaQueryBlock& q = blocks[i];
      const int M = q.tq * shape.heads, pos = q.pos0 + g / shape.heads;
      float M_ = 0, L_ = 0;
      for (int s = 0; s * kMlaKeySplit <= pos; ++s) {
        const float* p = ws.partial.data() + offset[i] + (static_cast<size_t>(s) * M + g) * rec;
        merge_row(s == 0, p[x.kvp], p[x.kvp + 1], p, x.kvp, M_, L_, t.acc.data());
      }
      finish_row(L_, t.acc.data(), shape.kv_lora, q.out + static_cast<size_t>(g) * shape.kv_lora);
    }
  });
#else
  (void)shape, (void)kv, (void)blocks, (void)n, (void)ws;
  throw std::logic_error("this build has no AVX512-BF16 attention kernel");
#endif
}

bool mla_amx_available() {
  return attn::amx_init();
}

MlaBackend mla_backend() {
#if defined(__AVX512BF16__)
  return backend().scores == attn::amx_scores ? MlaBackend::Amx : MlaBackend::Avx512Bf16;
#else
  return MlaBackend::Avx512Bf16;
#endif
}

void mla_set_backend(MlaBackend b) {
#if defined(__AVX512BF16__)
  if (b == MlaBackend::Amx) {
    if (!attn::amx_init()) throw std::runtime_error("this CPU has no AMX tiles");
    backend() = Backend{attn::amx_scores, attn::amx_pv};
  } else {
    backend() = Backend{avx_scores, avx_pv};
  }
#else
  if (b == MlaBackend::Amx) throw std::runtime_error("this build has no AMX kernel");
#endif
}

}  // namespace dpep
