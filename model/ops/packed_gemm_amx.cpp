// The kernels of packed_gemm (built with -mamx-tile -mamx-bf16 -mavx512bf16; run only after
// gemm_isa() checked CPUID). Orientation: y^T = W x^T, so a 16x32 weight tile is the A operand
// as stored and x, packed per call in pairs of k (VNNI), is the B operand; a C tile holds 16
// output columns (rows of W) for 16 rows of x.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "model/ops/packed_gemm_kernels.h"
#include "model/ops/parallel.h"

// GCC 12 reports _mm512_undefined_* inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dpep::gemm_detail {
namespace {

constexpr int kTileElems = kGemmTileElems;
// fp8 weights with at most two 16-row blocks of x are converted this many k tiles at a time
// (2 x 8 KB of bf16: stays in L1 between conversion and use).
constexpr int kFp8ChunkTiles = kGemmFp8ChunkTiles;

template <class T>
T* grown(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}
template <class T>
T* align64(T* p) {
  return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}
// Workers a parallel_ranges(.., parallel, ..) call may use: their scratch exists before it.
void fit_workers(GemmScratch& s, bool parallel) {
  const size_t n = parallel && omp_team_possible() ? omp_get_max_threads() : 1;
  if (s.workers.size() < n) s.workers.resize(n);
}
// Below this many weight elements (128 KB of bf16) a call runs on the calling thread. A parallel
// region costs about 1 us here (the team spins between regions); a 1 MB read, about 40 us on one
// thread. At 2 MB, the former threshold, decode read its attention projections on one core.
constexpr size_t kParallelMinElems = size_t(1) << 16;

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// All 8 tiles 16 rows x 64 bytes: C 0-3 (fp32 16x16), A 4-5 (weights), B 6-7 (x pairs).
void configure_tiles() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);
}

inline __m512 fp8x16_to_f32(__m128i q, __m512 scale) {
  const __m512i v = _mm512_cvtepu8_epi32(q);
  // e4m3 magnitude bits (exponent, mantissa) moved to the top of a float32's exponent and
  // mantissa fields give fp8_value * 2^-120 exactly (normals and subnormals alike).
  const __m512i mag = _mm512_and_si512(_mm512_slli_epi32(v, 20), _mm512_set1_epi32(0x07f00000));
  const __m512i bits =
      _mm512_ternarylogic_epi32(mag, _mm512_slli_epi32(v, 24), _mm512_set1_epi32(0x80000000),
                                0xf8);  // mag | (sign & mask)
  const __m512 f = _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));
  return _mm512_mul_ps(f, scale);
}

}  // namespace

bool request_amx_permission() {
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

void fp8_tile_to_bf16_avx512(const uint8_t* src, float scale, uint16_t* dst) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int r = 0; r < 16; ++r) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + r * 32));
    const __m512 lo = fp8x16_to_f32(_mm256_castsi256_si128(q), s);
    const __m512 hi = fp8x16_to_f32(_mm256_extracti128_si256(q, 1), s);
    _mm512_storeu_si512(dst + r * 32, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

namespace {

// fp8 tiles [kt0, kt1) of row tiles nt0 and nt0 + 1 -> buf: row tile i at buf + i * span.
void convert_pair(const PackedWeight& w, int nt0, int kt0, int kt1, uint16_t* buf, size_t span) {
  const int KT = w.k_tiles();
  for (int i = 0; i < 2; ++i)
    for (int kt = kt0; kt < kt1; ++kt)
      fp8_tile_to_bf16_avx512(w.tiles() + (static_cast<size_t>(nt0 + i) * KT + kt) * kTileElems,
                              w.scale(nt0 + i, kt),
                              buf + i * span + static_cast<size_t>(kt - kt0) * kTileElems);
}

// x [M, K] float32 -> bf16 B tiles: block mb, k tile kt at ((mb * KT) + kt) * 512; element
// (pair p, row m, half h) at p * 32 + m * 2 + h. Rows >= M and columns >= K are zero.
void pack_x_amx(const float* x, int M, int ldx, int K, int KT, uint16_t* xp) {
  const int MB = (M + 15) / 16;
  if (M % 16)
    std::memset(xp + static_cast<size_t>(MB - 1) * KT * kTileElems, 0,
                static_cast<size_t>(KT) * kTileElems * 2);
  const __m512i idx =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(16));
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<size_t>(m) * ldx;
    uint16_t* base = xp + static_cast<size_t>(m / 16) * KT * kTileElems + (m % 16) * 2;
    for (int kt = 0; kt < KT; ++kt) {
      const int c0 = kt * 32, nc = std::min(32, K - c0);
      const __mmask16 m0 = nc >= 16 ? 0xffff : static_cast<__mmask16>((1u << nc) - 1);
      const __mmask16 m1 = nc >= 32   ? 0xffff
                           : nc <= 16 ? 0
                                      : static_cast<__mmask16>((1u << (nc - 16)) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, xr + c0);
      const __m512 hi = _mm512_maskz_loadu_ps(m1, xr + c0 + 16);
      const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // dword p = (k 2p, k 2p+1)
      _mm512_i32scatter_epi32(base + static_cast<size_t>(kt) * kTileElems, idx, pairs, 4);
    }
  }
}

}  // namespace

void gemm_amx(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin, int pair_end,
              float* y, int ldy, GemmScratch& s) {
  const int KT = w.k_tiles(), NP = pair_end - pair_begin, N = w.n();
  const int MB = (M + 15) / 16;
  const bool fp8 = w.dtype() == DType::F8E4M3;
  uint16_t* xp = align64(grown(s.x, gemm_x_elems(M, KT)));
  pack_x_amx(x, M, ldx, w.k(), KT, xp);
  // With one pair of x blocks, fp8 is converted a chunk of k at a time right before use;
  // otherwise the whole pair of row tiles is converted once and reused by every x block.
  const int chunk = fp8 && MB <= 2 ? std::min(KT, kFp8ChunkTiles) : KT;
  const bool parallel = static_cast<size_t>(2 * NP) * KT * kTileElems >= kParallelMinElems;
  fit_workers(s, parallel);
  parallel_ranges(NP, parallel, [&](int p_begin, int p_end, int worker) {
    p_begin += pair_begin;
    p_end += pair_begin;
    configure_tiles();
    uint16_t* cb = fp8 ? align64(grown(s.workers[worker].conv, gemm_conv_elems(KT))) : nullptr;
    const size_t span = static_cast<size_t>(chunk) * kTileElems;
    alignas(64) float c[4][256];
    for (int p = p_begin; p < p_end; ++p) {
      const int nt0 = 2 * p;
      const uint16_t* wa = reinterpret_cast<const uint16_t*>(w.tiles());
      if (fp8 && chunk == KT) convert_pair(w, nt0, 0, KT, cb, span);
      for (int mb = 0; mb < MB; mb += 2) {
        const bool two = mb + 1 < MB;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const uint16_t* b0 = xp + static_cast<size_t>(mb) * KT * kTileElems;
        const uint16_t* b1 = b0 + static_cast<size_t>(KT) * kTileElems;
        for (int k0 = 0; k0 < KT; k0 += chunk) {
          const int k1 = std::min(KT, k0 + chunk);
          const uint16_t *a0, *a1;
          if (fp8) {
            if (chunk != KT) convert_pair(w, nt0, k0, k1, cb, span);
            a0 = cb;
            a1 = cb + span;
          } else {
            a0 = wa + (static_cast<size_t>(nt0) * KT + k0) * kTileElems;
            a1 = a0 + static_cast<size_t>(KT) * kTileElems;
          }
          for (int kt = k0; kt < k1; ++kt) {
            const size_t off = static_cast<size_t>(kt - k0) * kTileElems;
            _tile_loadd(4, a0 + off, 64);
            _tile_loadd(5, a1 + off, 64);
            _tile_loadd(6, b0 + static_cast<size_t>(kt) * kTileElems, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 5, 6);
            if (two) {
              _tile_loadd(7, b1 + static_cast<size_t>(kt) * kTileElems, 64);
              _tile_dpbf16ps(2, 4, 7);
              _tile_dpbf16ps(3, 5, 7);
            }
          }
        }
        _tile_stored(0, c[0], 64);
        _tile_stored(1, c[1], 64);
        if (two) {
          _tile_stored(2, c[2], 64);
          _tile_stored(3, c[3], 64);
        }
        // c[tile][i * 16 + j] = y[row mb*16 + j (+16 for tiles 2, 3)][column (nt0 + tile%2)*16 + i]
        for (int t = 0; t < (two ? 4 : 2); ++t) {
          const int n0 = (nt0 + t % 2) * 16, m0 = (mb + t / 2) * 16;
          const int ni = std::min(16, N - n0), mj = std::min(16, M - m0);
          for (int j = 0; j < mj; ++j) {
            float* yr = y + static_cast<size_t>(m0 + j) * ldy + n0;
            for (int i = 0; i < ni; ++i) yr[i] = c[t][i * 16 + j];
          }
        }
      }
    }
    _tile_release();
  });
}

namespace {

// 32 e4m3 codes -> their exact values as bf16 (every e4m3 value is a bf16 value): normals by
// re-biasing the exponent (7 -> 127), the 7 subnormals m * 2^-9 from a table.
inline __m512i fp8x32_to_bf16_exact(__m256i q) {
  const __m512i v = _mm512_cvtepu8_epi16(q);
  const __m512i mag = _mm512_and_si512(v, _mm512_set1_epi16(0x7f));
  const __m512i normal = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(120 << 7));
  // bf16 of m * 2^-9 for m = 0..7 (m * 2^-9 = 1.f * 2^e exactly), indexed by the code.
  alignas(64) static const uint16_t kSub[32] = {0,      0x3b00, 0x3b80, 0x3bc0,
                                                0x3c00, 0x3c20, 0x3c40, 0x3c60};
  const __m512i sub = _mm512_load_si512(kSub);
  const __m512i bits = _mm512_mask_permutexvar_epi16(
      normal, _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8)), mag, sub);
  return _mm512_ternarylogic_epi32(bits, _mm512_slli_epi16(v, 8),
                                   _mm512_set1_epi16(int16_t(0x8000)),
                                   0xf8);  // bits | (sign & mask)
}

// Accumulators of R weight rows x MR rows of x over k tiles [kt0, kt1): each output element
// is one 16-lane float32 vector updated tile after tile in k order and reduced at the very end,
// whatever R, MR and the chunking (chunks store and reload the vectors exactly).
template <int R, int MR>
inline void dot_chunk(const uint16_t* a, int kt0, int kt1, const uint16_t* xb, size_t xs,
                      __m512* acc) {
  __m512 c[R][MR];
  for (int i = 0; i < R; ++i)
    for (int m = 0; m < MR; ++m) c[i][m] = acc[i * MR + m];
  for (int kt = kt0; kt < kt1; ++kt) {
    __m512bh xv[MR];
    for (int m = 0; m < MR; ++m) xv[m] = (__m512bh)_mm512_loadu_si512(xb + m * xs + kt * 32);
    const uint16_t* t = a + static_cast<size_t>(kt) * kTileElems;
    for (int i = 0; i < R; ++i) {
      const __m512bh av = (__m512bh)_mm512_loadu_si512(t + i * 32);
      for (int m = 0; m < MR; ++m) c[i][m] = _mm512_dpbf16_ps(c[i][m], av, xv[m]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int m = 0; m < MR; ++m) acc[i * MR + m] = c[i][m];
}

// One row of x (bf16, scaled per block for fp8) against one fp8 tile column, each tile
// converted in registers (decode: nothing is written back to memory).
inline void dot_fp8_row(const uint8_t* q, int KT, const uint16_t* xb, __m512* acc) {
  __m512 c[16];
  for (int i = 0; i < 16; ++i) c[i] = _mm512_setzero_ps();
  for (int kt = 0; kt < KT; ++kt, q += kTileElems) {
    const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + kt * 32);
    for (int i = 0; i < 16; ++i) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i * 32));
      c[i] = _mm512_dpbf16_ps(c[i], (__m512bh)fp8x32_to_bf16_exact(v), xv);
    }
  }
  for (int i = 0; i < 16; ++i) acc[i] = c[i];
}

// out[i] = _mm512_reduce_add_ps(v[i]) for i < 16, bitwise: the same additions of the same
// operands (GCC's reduction: halves 256, then 128, then lanes (0,2)+(1,3), then the two), made
// on four vectors at a time. 46 instructions instead of 16 x 12: with K = 256 (8 tiles), the
// separate reductions cost more than the products.
inline __m512 reduce16(const __m512* v) {
  __m512 w[8], u[4], t[2];
  for (int j = 0; j < 8; ++j)  // lanes i + (i + 8) of v[2j] | of v[2j + 1]
    w[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int j = 0; j < 4; ++j)  // quarter q: lanes i + (i + 4) of v[4j + q]
    u[j] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * j], w[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w[2 * j], w[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int j = 0; j < 2; ++j)  // quarter q: (0 + 2, 1 + 3) of v[8j + q], then of v[8j + 4 + q]
    t[j] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lane 4q + c: the sum of v[q + 4c].
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(idx, s);
}

// x rows [M, K] -> bf16 [M, KT * 32] (zero padded), times scale[kt / 4] when scale is given.
void round_x(const float* x, int M, int ldx, int K, int KT, const float* scale, uint16_t* out) {
  const size_t xs = static_cast<size_t>(KT) * 32;
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<size_t>(m) * ldx;
    uint16_t* o = out + m * xs;
    for (int kt = 0; kt < KT; ++kt) {
      const int c0 = kt * 32, nc = std::min(32, K - c0);
      const __mmask16 m0 = nc >= 16 ? 0xffff : static_cast<__mmask16>((1u << nc) - 1);
      const __mmask16 m1 = nc >= 32   ? 0xffff
                           : nc <= 16 ? 0
                                      : static_cast<__mmask16>((1u << (nc - 16)) - 1);
      __m512 lo = _mm512_maskz_loadu_ps(m0, xr + c0), hi = _mm512_maskz_loadu_ps(m1, xr + c0 + 16);
      if (scale) {
        const __m512 s = _mm512_set1_ps(scale[kt / 4]);
        lo = _mm512_mul_ps(lo, s);
        hi = _mm512_mul_ps(hi, s);
      }
      _mm512_storeu_si512(o + c0, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

}  // namespace

void fp8x32_to_bf16_exact_avx512(const uint8_t* src, uint16_t* dst) {
  _mm512_storeu_si512(
      dst, fp8x32_to_bf16_exact(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))));
}

// FP8 on this path: the e4m3 codes are exact in bf16 and the block scale goes with x instead
// (x rounded to bf16 after the multiplication, per 128x128 block): one scale per block of 128
// output rows and 128 k, so x is scaled once per 128 output rows.
void gemm_avx512bf16(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                     int pair_end, float* y, int ldy, GemmScratch& s) {
  const int KT = w.k_tiles(), NT = 2 * (pair_end - pair_begin), N = w.n(), K = w.k();
  const bool fp8 = w.dtype() == DType::F8E4M3;
  const size_t xs = static_cast<size_t>(KT) * 32;
  const int KB = (KT + 3) / 4;  // 128-wide k blocks
  // bf16 weights: x rounded once here and shared by every thread.
  uint16_t* xb_shared = grown(s.x, gemm_x_elems(M, KT));
  if (!fp8) round_x(x, M, ldx, K, KT, nullptr, xb_shared);
  // Up to this many rows of x, fp8 tiles are converted in registers at each use; above, a
  // tile column is converted once into a buffer and reused by every row.
  constexpr int kFusedRows = 2;
  constexpr int kChunk = 16;  // k tiles per chunk when several rows of x share a tile column
  // Up to 16 rows of bf16 x, each row takes the chunk's 16 weight rows in one pass (the chunk
  // stays in L1 for the next row); above, 8 weight rows x 3 rows of x per pass reuse more
  // registers. A pass over 8 rows reads every other 512 bytes of the tiles, which streamed from
  // memory at half the rate of whole tiles (2 rows of x: 2x slower). The element sums are the
  // same either way (dot_chunk).
  const bool whole_rows = !fp8 && M <= 16;
  const bool parallel = static_cast<size_t>(NT) * KT * kTileElems >= kParallelMinElems;
  fit_workers(s, parallel);
  parallel_ranges(NT, parallel, [&](int nt_begin, int nt_end, int worker) {
    nt_begin += 2 * pair_begin;
    nt_end += 2 * pair_begin;
    // This worker's scratch in the caller's GemmScratch (grown to the largest shape seen).
    GemmScratch::Worker& wk = s.workers[worker];
    int scaled_rb = -1;
    float* sc = grown(wk.sc, KB);
    __m512* accs = reinterpret_cast<__m512*>(align64(grown(wk.accs, gemm_accs_floats(M))));
    uint16_t* conv = fp8 && M > kFusedRows ? grown(wk.conv, gemm_conv_elems(KT)) : nullptr;
    uint16_t* xscaled = fp8 ? grown(wk.xscaled, static_cast<size_t>(M) * xs) : nullptr;
    for (int nt = nt_begin; nt < nt_end; ++nt) {
      if (nt * 16 >= N) continue;
      const int ni = std::min(16, N - nt * 16);
      const uint16_t* xb = xb_shared;
      const uint16_t* a =
          reinterpret_cast<const uint16_t*>(w.tiles()) + static_cast<size_t>(nt) * KT * kTileElems;
      if (fp8) {
        const int rb = nt / 8;  // 128 output rows = 8 tiles share their scales
        if (rb != scaled_rb) {
          for (int kb = 0; kb < KB; ++kb) sc[kb] = w.scale(nt, kb * 4);
          round_x(x, M, ldx, K, KT, sc, xscaled);
          scaled_rb = rb;
        }
        xb = xscaled;
      }
      __m512* acc = accs;  // [16 rows][M]
      const uint8_t* q = w.tiles() + static_cast<size_t>(nt) * KT * kTileElems;
      if (fp8 && M <= kFusedRows) {
        for (int m = 0; m < M; ++m) {
          dot_fp8_row(q, KT, xb + m * xs, acc);
          _mm512_mask_storeu_ps(y + static_cast<size_t>(m) * ldy + nt * 16,
                                static_cast<__mmask16>((1u << ni) - 1), reduce16(acc));
        }
        continue;
      }
      if (fp8) {
        for (int kt = 0; kt < KT; ++kt)
          for (int i = 0; i < 16; ++i)
            _mm512_storeu_si512(
                conv + static_cast<size_t>(kt) * kTileElems + i * 32,
                fp8x32_to_bf16_exact(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                    q + static_cast<size_t>(kt) * kTileElems + i * 32))));
        a = conv;
      }
      {
        std::fill_n(acc, static_cast<size_t>(16) * M, _mm512_setzero_ps());
        // acc layout for row group g (8 rows) and x rows [m, m + MR): acc + (g * M + m) * 8.
        for (int k0 = 0; k0 < KT; k0 += kChunk) {
          const int k1 = std::min(KT, k0 + kChunk);
          if (whole_rows) {
            for (int m = 0; m < M; ++m)
              dot_chunk<16, 1>(a, k0, k1, xb + m * xs, xs, acc + static_cast<size_t>(m) * 16);
            continue;
          }
          for (int g = 0; g < 2; ++g) {
            const uint16_t* ag = a + g * 8 * 32;
            int m = 0;
            for (; m + 3 <= M; m += 3)
              dot_chunk<8, 3>(ag, k0, k1, xb + m * xs, xs,
                              acc + (static_cast<size_t>(g) * M + m) * 8);
            if (M - m == 2)
              dot_chunk<8, 2>(ag, k0, k1, xb + m * xs, xs,
                              acc + (static_cast<size_t>(g) * M + m) * 8);
            else if (M - m == 1)
              dot_chunk<8, 1>(ag, k0, k1, xb + m * xs, xs,
                              acc + (static_cast<size_t>(g) * M + m) * 8);
          }
        }
      }
      for (int m = 0; m < M; ++m) {
        // Row i of the tile, x row m: where dot_chunk left its vector.
        __m512 v[16];
        for (int i = 0; i < 16; ++i)
          v[i] = whole_rows ? acc[static_cast<size_t>(m) * 16 + i]
                            : acc[(static_cast<size_t>(i / 8) * M + (m / 3) * 3) * 8 +
                                  (i % 8) * std::min(3, M - (m / 3) * 3) + m % 3];
        _mm512_mask_storeu_ps(y + static_cast<size_t>(m) * ldy + nt * 16,
                              static_cast<__mmask16>((1u << ni) - 1), reduce16(v));
      }
    }
  });
}

}  // namespace dpep::gemm_detail
