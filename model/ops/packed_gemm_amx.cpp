// The kernels of packed_gemm (built with -mamx-tile -mamx-bf16 -mavx512bf16; run only after
// gemm_isa() checked CPUID). A weight tile holds 16 weight rows x 32 k as 16 pairs of k
// (VNNI, packed_gemm.h), so that one 64-byte vector is one pair of k for 16 output columns:
// - AVX512-BF16: outer products. A pair of x values, broadcast, times that vector adds to 16
//   output columns at once (no horizontal sums); a register block of up to 6 rows of x by 4
//   weight tiles (64 columns) reuses each load 4 to 6 times.
// - AMX: the weight tile is the B operand as stored, 16 rows of x (bf16) the A operand, and a
//   C tile is 16 rows of x by 16 output columns.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "model/ops/packed_gemm_kernels.h"
#include "model/ops/parallel.h"

// GCC 12 reports _mm512_undefined_* inside its own intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace dpep::gemm_detail {
namespace {

constexpr int kTileElems = kGemmTileElems;
constexpr int kChunkTiles = kGemmChunkTiles;  // k tiles per pass over a block of weight tiles
constexpr int kMaxRows = 6, kMaxTiles = 4;    // register block: rows of x x weight tiles

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

// All 8 tiles 16 rows x 64 bytes: C 0-3 (fp32 16x16), A 4-5 (x), B 6-7 (weights).
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

void fp8x32_to_bf16_exact_avx512(const uint8_t* src, uint16_t* dst) {
  _mm512_storeu_si512(
      dst, fp8x32_to_bf16_exact(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))));
}

void gemm_amx(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin, int pair_end,
              float* y, int ldy, GemmScratch& s) {
  const int KT = w.k_tiles(), NP = pair_end - pair_begin, N = w.n();
  const int MB = (M + 15) / 16;
  const bool fp8 = w.dtype() == DType::F8E4M3;
  const size_t xs = static_cast<size_t>(KT) * 32;
  // x as bf16 rows [MB * 16, KT * 32]; the rows past M are zero (A tiles are 16 rows).
  uint16_t* xb = align64(grown(s.x, gemm_x_elems(M, KT)));
  round_x(x, M, ldx, w.k(), KT, nullptr, xb);
  std::memset(xb + static_cast<size_t>(M) * xs, 0, sizeof(uint16_t) * (MB * 16 - M) * xs);
  const bool parallel = static_cast<size_t>(2 * NP) * KT * kTileElems >= kParallelMinElems;
  fit_workers(s, parallel);
  parallel_ranges(NP, parallel, [&](int p_begin, int p_end, int worker) {
    p_begin += pair_begin;
    p_end += pair_begin;
    configure_tiles();
    // fp8: a pair of weight tile columns converted to bf16 (scale applied) once, then used by
    // every block of x.
    uint16_t* cb = fp8 ? align64(grown(s.workers[worker].conv, gemm_conv_elems(KT))) : nullptr;
    alignas(64) float c[4][256];
    for (int p = p_begin; p < p_end; ++p) {
      const int nt0 = 2 * p;
      const uint16_t *b0, *b1;
      if (fp8) {
        for (int i = 0; i < 2; ++i)
          for (int kt = 0; kt < KT; ++kt)
            fp8_tile_to_bf16_avx512(
                w.tiles() + (static_cast<size_t>(nt0 + i) * KT + kt) * kTileElems,
                w.scale(nt0 + i, kt), cb + (static_cast<size_t>(i) * KT + kt) * kTileElems);
        b0 = cb;
      } else {
        b0 = reinterpret_cast<const uint16_t*>(w.tiles()) +
             static_cast<size_t>(nt0) * KT * kTileElems;
      }
      b1 = b0 + static_cast<size_t>(KT) * kTileElems;
      for (int mb = 0; mb < MB; mb += 2) {
        const bool two = mb + 1 < MB;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const uint16_t* a0 = xb + static_cast<size_t>(mb) * 16 * xs;
        const uint16_t* a1 = a0 + 16 * xs;
        for (int kt = 0; kt < KT; ++kt) {
          _tile_loadd(4, a0 + kt * 32, static_cast<int>(xs * 2));
          _tile_loadd(6, b0 + static_cast<size_t>(kt) * kTileElems, 64);
          _tile_loadd(7, b1 + static_cast<size_t>(kt) * kTileElems, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          if (two) {
            _tile_loadd(5, a1 + kt * 32, static_cast<int>(xs * 2));
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        _tile_stored(0, c[0], 64);
        _tile_stored(1, c[1], 64);
        if (two) {
          _tile_stored(2, c[2], 64);
          _tile_stored(3, c[3], 64);
        }
        // c[t][j * 16 + i] = y[row (mb + t / 2) * 16 + j][column (nt0 + t % 2) * 16 + i]
        for (int t = 0; t < (two ? 4 : 2); ++t) {
          const int n0 = (nt0 + t % 2) * 16, m0 = (mb + t / 2) * 16;
          const int ni = std::min(16, N - n0), mj = std::min(16, M - m0);
          if (ni <= 0) continue;
          for (int j = 0; j < mj; ++j)
            _mm512_mask_storeu_ps(y + static_cast<size_t>(m0 + j) * ldy + n0,
                                  static_cast<__mmask16>((1u << ni) - 1),
                                  _mm512_load_ps(c[t] + j * 16));
        }
      }
    }
    _tile_release();
  });
}

namespace {

// Rows [m0, m0 + MR) of x by tile columns j < NB (16 output columns each) over `pairs` pairs of
// k: acc[m][j] (16 floats) gets one dpbf16 per pair, pairs in ascending order. So each output
// element is the same sequence of operations whatever MR, NB and the chunking (a chunk stores
// its accumulators and the next one reloads them exactly), the thread count or the rows around.
// w: tile column j at w + j * wstride bytes, FP8 ? 32 e4m3 codes per pair (converted here) :
// 32 bf16 per pair. x: one uint32 (two bf16) per pair, row m at x + m * xs.
// The last chunk of k (y set) writes the sums straight to y (row m at y + m * ldy, tile column
// j under mask[j]) instead of to acc. (Plain arguments, not a struct: a struct passed on the
// stack cost a store-forwarding stall per call.)
template <int MR, int NB, bool FP8>
inline void outer_block(const uint8_t* w, size_t wstride, int pairs, const uint32_t* x, size_t xs,
                        float* acc, bool first, float* y, size_t ldy, const __mmask16* mask) {
  __m512 c[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NB; ++j)
      c[m][j] = first ? _mm512_setzero_ps() : _mm512_load_ps(acc + (m * NB + j) * 16);
  for (int p = 0; p < pairs; ++p) {
    __m512bh wv[NB];
    for (int j = 0; j < NB; ++j) {
      const uint8_t* src = w + j * wstride;
      wv[j] = FP8 ? (__m512bh)fp8x32_to_bf16_exact(
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + p * 32)))
                  : (__m512bh)_mm512_loadu_si512(src + p * 64);
    }
    for (int m = 0; m < MR; ++m) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[m * xs + p]));
      for (int j = 0; j < NB; ++j) c[m][j] = _mm512_dpbf16_ps(c[m][j], wv[j], xv);
    }
  }
  if (y) {
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < NB; ++j) _mm512_mask_storeu_ps(y + m * ldy + j * 16, mask[j], c[m][j]);
    return;
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NB; ++j) _mm512_store_ps(acc + (m * NB + j) * 16, c[m][j]);
}

// Rows per pass over the weights when M is large (a multiple of kMaxRows).
constexpr int kRowChunk = 192;

using OuterFn = void (*)(const uint8_t*, size_t, int, const uint32_t*, size_t, float*, bool, float*,
                         size_t, const __mmask16*);

// outer_block<MR, NB, FP8> for every MR <= kMaxRows, NB <= kMaxTiles, index (MR - 1) * kMaxTiles
// + NB - 1.
template <bool FP8, int... I>
constexpr std::array<OuterFn, sizeof...(I)> outer_table(std::integer_sequence<int, I...>) {
  return {outer_block<I / kMaxTiles + 1, I % kMaxTiles + 1, FP8>...};
}

template <bool FP8>
OuterFn outer_fn(int mr, int nb) {
  static constexpr auto table =
      outer_table<FP8>(std::make_integer_sequence<int, kMaxRows * kMaxTiles>());
  return table[(mr - 1) * kMaxTiles + nb - 1];
}

}  // namespace

// FP8 on this path: the e4m3 codes are exact in bf16 and the block scale goes with x instead
// (x rounded to bf16 after the multiplication, per 128x128 block): one scale per block of 128
// output rows and 128 k, so x is scaled once per 128 output rows.
void gemm_avx512bf16(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                     int pair_end, float* y, int ldy, GemmScratch& s) {
  const int KT = w.k_tiles(), NT = 2 * (pair_end - pair_begin), N = w.n(), K = w.k();
  const bool fp8 = w.dtype() == DType::F8E4M3;
  const size_t xs = static_cast<size_t>(KT) * 32;  // bf16 per row of x
  const int KB = (KT + 3) / 4;                     // 128-wide k blocks
  const size_t tile_bytes = static_cast<size_t>(kTileElems) * (fp8 ? 1 : 2);
  // bf16 weights: x rounded once here and shared by every thread.
  uint16_t* xb_shared = grown(s.x, gemm_x_elems(M, KT));
  if (!fp8) round_x(x, M, ldx, K, KT, nullptr, xb_shared);
  // fp8 with more than 16 rows of x: a chunk of tiles is converted into a buffer once and read
  // by every block of rows; up to 16 rows (3 blocks), each block converts in registers, which
  // measured faster (bench_packed_gemm 4096 7168, one thread: fp8/bf16 time 1.39 vs 1.67 at
  // M = 8, 1.24 vs 1.36 at M = 16; 1.52 vs 1.19 at M = 64).
  const bool convert_chunks = fp8 && M > 16;
  const bool parallel = static_cast<size_t>(NT) * KT * kTileElems >= kParallelMinElems;
  fit_workers(s, parallel);
  parallel_ranges(NT, parallel, [&](int nt_begin, int nt_end, int worker) {
    nt_begin += 2 * pair_begin;
    nt_end += 2 * pair_begin;
    GemmScratch::Worker& wk = s.workers[worker];
    float* sc = grown(wk.sc, KB);
    float* acc = align64(grown(wk.accs, gemm_accs_floats(M)));  // [rows][NB * 16]
    uint16_t* conv = convert_chunks ? align64(grown(wk.conv, gemm_conv_elems(KT))) : nullptr;
    uint16_t* xscaled = fp8 ? grown(wk.xscaled, static_cast<size_t>(M) * xs) : nullptr;
    // Rows in chunks of kRowChunk: a chunk's accumulators and x stay in L2 while every column
    // block of the worker passes over them (one pass over all M rows per column block fell
    // from 214 to 160 GFLOP/s at M = 8192: bench_packed_gemm 1024 1024 8192).
    for (int mc0 = 0; mc0 < M; mc0 += kRowChunk) {
      const int mc1 = std::min(M, mc0 + kRowChunk);
      int scaled_rb = -1;
      for (int nt = nt_begin; nt < nt_end;) {
        if (nt * 16 >= N) break;  // padding tiles only from here
        // A block of up to 4 tile columns, within one 128-row scale block for fp8.
        const int nb = std::min({kMaxTiles, nt_end - nt, (nt / 8 + 1) * 8 - nt});
        __mmask16 mask[kMaxTiles];  // the columns of tile nt + j below N
        for (int j = 0; j < nb; ++j) {
          const int ni = std::clamp(N - (nt + j) * 16, 0, 16);
          mask[j] = static_cast<__mmask16>((1u << ni) - 1);
        }
        // x of row m at xp + (m - xrow0) * xps: shared rows of the whole call, or this chunk's
        // rows scaled for fp8.
        const uint16_t* xb = xb_shared;
        int xrow0 = 0;
        if (fp8) {
          const int rb = nt / 8;  // 128 output rows = 8 tiles share their scales
          if (rb != scaled_rb) {
            for (int kb = 0; kb < KB; ++kb) sc[kb] = w.scale(nt, kb * 4);
            round_x(x + static_cast<size_t>(mc0) * ldx, mc1 - mc0, ldx, K, KT, sc, xscaled);
            scaled_rb = rb;
          }
          xb = xscaled;
          xrow0 = mc0;
        }
        const uint32_t* xp = reinterpret_cast<const uint32_t*>(xb);
        const size_t xps = xs / 2;  // pairs per row
        for (int k0 = 0; k0 < KT; k0 += kChunkTiles) {
          const int k1 = std::min(KT, k0 + kChunkTiles), pairs = (k1 - k0) * 16;
          const uint8_t* wb = w.tiles() + (static_cast<size_t>(nt) * KT + k0) * tile_bytes;
          size_t wstride = static_cast<size_t>(KT) * tile_bytes;
          bool in_regs_fp8 = fp8;
          if (convert_chunks) {
            for (int j = 0; j < nb; ++j)
              for (int t = 0; t < k1 - k0; ++t)
                for (int p = 0; p < 16; ++p)
                  fp8x32_to_bf16_exact_avx512(
                      wb + j * wstride + (static_cast<size_t>(t) * 16 + p) * 32,
                      conv + (static_cast<size_t>(j) * kChunkTiles * 16 + t * 16 + p) * 32);
            wb = reinterpret_cast<const uint8_t*>(conv);
            wstride = static_cast<size_t>(kChunkTiles) * kTileElems * 2;
            in_regs_fp8 = false;
          }
          const bool last = k1 == KT;
          for (int m0 = mc0; m0 < mc1; m0 += kMaxRows) {
            const int mr = std::min(kMaxRows, mc1 - m0);
            OuterFn f = in_regs_fp8 ? outer_fn<true>(mr, nb) : outer_fn<false>(mr, nb);
            float* yo = last ? y + static_cast<size_t>(m0) * ldy + nt * 16 : nullptr;
            f(wb, wstride, pairs, xp + (m0 - xrow0) * xps + static_cast<size_t>(k0) * 16, xps,
              acc + static_cast<size_t>(m0 - mc0) * nb * 16, k0 == 0, yo, ldy, mask);
          }
        }
        nt += nb;
      }
    }
  });
}

}  // namespace dpep::gemm_detail
