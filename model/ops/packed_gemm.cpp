// Packing, exact dequantisation and run-time dispatch of packed_gemm. No AMX or AVX512
// instruction here: this file runs on any x86-64 CPU.
#include "model/ops/packed_gemm.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/io/fp8_block.h"
#include "model/ops/packed_gemm_kernels.h"
#include "model/ops/weight_arena.h"

namespace dpep {
namespace {

constexpr int kTileRows = 16, kTileCols = 32, kTileElems = kTileRows * kTileCols;
// Element (weight row i, k column c) of a tile: pairs of k, each pair 16 rows x 2 (VNNI).
constexpr int in_tile(int i, int c) {
  return (c / 2) * 2 * kTileRows + i * 2 + c % 2;
}

bool cpu_has(unsigned leaf, unsigned sub, int reg, int bit) {
  unsigned r[4];
  if (__get_cpuid_max(0, nullptr) < leaf) return false;
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit) & 1u;
}

bool os_saves_avx512() {
  if (!cpu_has(1, 0, 2, 27)) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xe6u) == 0xe6u;  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
}

GemmIsa detect() {
  const bool avx512 = cpu_has(7, 0, 1, 16) && cpu_has(7, 0, 1, 30) && os_saves_avx512();
  const bool bf16 = avx512 && cpu_has(7, 1, 0, 5);                          // AVX512_BF16
  const bool amx = avx512 && cpu_has(7, 0, 3, 24) && cpu_has(7, 0, 3, 22);  // AMX-TILE, AMX-BF16
  // The AMX kernel could not be run where it was written (a CPU without AMX): it is opt-in
  // until it has been tested on AMX hardware (DPEP_GEMM_AMX=1 and test_packed_gemm).
  const char* opt_in = std::getenv("DPEP_GEMM_AMX");
  if (amx && opt_in && std::string(opt_in) == "1" && gemm_detail::request_amx_permission())
    return GemmIsa::Amx;
  if (bf16) return GemmIsa::Avx512Bf16;
  return GemmIsa::None;
}

}  // namespace

const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Amx:
      return "amx";
    case GemmIsa::Avx512Bf16:
      return "avx512bf16";
    case GemmIsa::None:
      return "none";
  }
  return "?";
}

GemmIsa gemm_isa() {
  static const GemmIsa isa = detect();
  return isa;
}

void PackedWeight::allocate(DType t, int n, int k) {
  if (n <= 0 || k <= 0) throw std::invalid_argument("PackedWeight: empty matrix");
  dtype_ = t;
  n_ = n;
  k_ = k;
  n_tiles_ = (n + 2 * kTileRows - 1) / (2 * kTileRows) * 2;  // whole pairs of row tiles
  k_tiles_ = (k + kTileCols - 1) / kTileCols;
  const size_t bytes = static_cast<size_t>(n_tiles_) * k_tiles_ * kTileElems * dtype_bytes(t);
  data_ = weight_alloc(bytes);
}

template <typename T, typename Conv>
static void pack_tiles(T* dst, int n, int k, int k_tiles, Conv value) {
  for (int r = 0; r < n; ++r) {
    const int nt = r / kTileRows, i = r % kTileRows;
    for (int c = 0; c < k; ++c) {
      const int kt = c / kTileCols, j = c % kTileCols;
      dst[(static_cast<size_t>(nt) * k_tiles + kt) * kTileElems + in_tile(i, j)] = value(r, c);
    }
  }
}

PackedWeight PackedWeight::from_f32(const float* w, int n, int k) {
  PackedWeight p;
  p.allocate(DType::BF16, n, k);
  pack_tiles(reinterpret_cast<uint16_t*>(p.data_.get()), n, k, p.k_tiles_,
             [&](int r, int c) { return f32_to_bf16(w[static_cast<size_t>(r) * k + c]); });
  return p;
}

// Raw elements (bf16 bits or e4m3 codes) moved into the tiles, a pair of k at a time.
template <typename T>
static void copy_tiles(T* dst, const T* src, int n, int k, int k_tiles) {
  for (int r = 0; r < n; ++r) {
    const int nt = r / kTileRows, i = r % kTileRows;
    const T* row = src + static_cast<size_t>(r) * k;
    for (int kt = 0; kt < k_tiles; ++kt) {
      T* tile = dst + (static_cast<size_t>(nt) * k_tiles + kt) * kTileElems;
      const int c0 = kt * kTileCols, nc = std::min(kTileCols, k - c0);
      int c = 0;
      for (; c + 1 < nc; c += 2) std::memcpy(tile + in_tile(i, c), row + c0 + c, 2 * sizeof(T));
      if (c < nc) tile[in_tile(i, c)] = row[c0 + c];
    }
  }
}

PackedWeight PackedWeight::from_bf16(const uint16_t* w, int n, int k) {
  PackedWeight p;
  p.allocate(DType::BF16, n, k);
  copy_tiles(reinterpret_cast<uint16_t*>(p.data_.get()), w, n, k, p.k_tiles_);
  return p;
}

PackedWeight PackedWeight::from_fp8(const uint8_t* q, const float* scale_inv, int n, int k) {
  PackedWeight p;
  p.allocate(DType::F8E4M3, n, k);
  copy_tiles(p.data_.get(), q, n, k, p.k_tiles_);
  p.scale_inv_.assign(scale_inv, scale_inv + fp8_blocks(n) * fp8_blocks(k));
  return p;
}

PackedWeight PackedWeight::interleave_rows(const PackedWeight& a, const PackedWeight& b,
                                           int group) {
  const bool fp8 = a.dtype_ == DType::F8E4M3;
  if (a.n_ != b.n_ || a.k_ != b.k_ || a.dtype_ != b.dtype_ || group <= 0 ||
      group % kTileRows != 0 || a.n_ % group != 0 || (fp8 && group % kFp8Block != 0))
    throw std::invalid_argument("PackedWeight::interleave_rows: shapes do not interleave");
  PackedWeight p;
  p.allocate(a.dtype_, 2 * a.n_, a.k_);
  // A block of `group` rows is group / 16 whole row tiles, contiguous (all their k tiles).
  const size_t block =
      static_cast<size_t>(group / kTileRows) * a.k_tiles_ * kTileElems * dtype_bytes(a.dtype_);
  for (int j = 0; j < a.n_ / group; ++j) {
    std::memcpy(p.data_.get() + 2 * j * block, a.data_.get() + j * block, block);
    std::memcpy(p.data_.get() + (2 * j + 1) * block, b.data_.get() + j * block, block);
  }
  if (fp8) {  // scale rows (one per 128 weight rows) interleaved the same way
    const int kb = static_cast<int>(fp8_blocks(a.k_)), rb = group / kFp8Block;
    std::vector<float> s;
    s.reserve(a.scale_inv_.size() * 2);
    for (int j = 0; j < a.n_ / group; ++j)
      for (const PackedWeight* src : {&a, &b}) {
        const float* first = src->scale_inv_.data() + static_cast<size_t>(j) * rb * kb;
        s.insert(s.end(), first, first + static_cast<size_t>(rb) * kb);
      }
    p.scale_inv_ = std::move(s);
  }
  return p;
}

PackedWeight PackedWeight::concat_rows(const PackedWeight& a, const PackedWeight& b) {
  const bool fp8 = a.dtype_ == DType::F8E4M3;
  if (a.k_ != b.k_ || a.dtype_ != b.dtype_ || a.empty() || b.empty() ||
      a.n_ % (2 * kTileRows) != 0 || (fp8 && a.n_ % kFp8Block != 0))
    throw std::invalid_argument("PackedWeight::concat_rows: shapes do not concatenate");
  PackedWeight p;
  p.allocate(a.dtype_, a.n_ + b.n_, a.k_);
  const size_t tile_bytes = static_cast<size_t>(kTileElems) * dtype_bytes(a.dtype_);
  const size_t a_bytes = static_cast<size_t>(a.n_tiles_) * a.k_tiles_ * tile_bytes;
  std::memcpy(p.data_.get(), a.data_.get(), a_bytes);
  std::memcpy(p.data_.get() + a_bytes, b.data_.get(),
              static_cast<size_t>(b.n_tiles_) * b.k_tiles_ * tile_bytes);
  if (fp8) {
    p.scale_inv_ = a.scale_inv_;
    p.scale_inv_.insert(p.scale_inv_.end(), b.scale_inv_.begin(), b.scale_inv_.end());
  }
  return p;
}

size_t PackedWeight::bytes() const {
  return static_cast<size_t>(n_tiles_) * k_tiles_ * kTileElems * dtype_bytes(dtype_) +
         scale_inv_.size() * sizeof(float);
}

float PackedWeight::scale(int nt, int kt) const {
  const int64_t br = static_cast<int64_t>(nt) * kTileRows / kFp8Block;
  const int64_t bc = static_cast<int64_t>(kt) * kTileCols / kFp8Block;
  if (br >= fp8_blocks(n_) || bc >= fp8_blocks(k_)) return 0.0f;  // padding tile
  return scale_inv_[br * fp8_blocks(k_) + bc];
}

void PackedWeight::rows_f32(int r0, int nr, float* out) const {
  if (r0 < 0 || nr < 0 || r0 + nr > n_) throw std::out_of_range("PackedWeight::rows_f32");
  const float* lut = fp8_e4m3_lut();
  for (int r = r0; r < r0 + nr; ++r) {
    const int nt = r / kTileRows, i = r % kTileRows;
    float* o = out + static_cast<size_t>(r - r0) * k_;
    for (int kt = 0; kt < k_tiles_; ++kt) {
      const size_t off = (static_cast<size_t>(nt) * k_tiles_ + kt) * kTileElems;
      const int c0 = kt * kTileCols, nc = std::min(kTileCols, k_ - c0);
      if (dtype_ == DType::BF16) {
        const uint16_t* s = reinterpret_cast<const uint16_t*>(data_.get()) + off;
        for (int j = 0; j < nc; ++j) o[c0 + j] = bf16_to_f32(s[in_tile(i, j)]);
      } else {
        const uint8_t* s = data_.get() + off;
        const float sc = scale(nt, kt);
        for (int j = 0; j < nc; ++j) o[c0 + j] = lut[s[in_tile(i, j)]] * sc;
      }
    }
  }
}

void GemmScratch::reserve(const PackedWeight& w, int M, int threads) {
  const int KT = w.k_tiles();
  const bool fp8 = w.dtype() == DType::F8E4M3;
  auto grow = [](auto& v, size_t n) {
    if (v.size() < n) v.resize(n);
  };
  grow(x, gemm_detail::gemm_x_elems(M, KT));
  if (workers.size() < static_cast<size_t>(threads)) workers.resize(threads);
  for (Worker& k : workers) {
    grow(k.accs, gemm_detail::gemm_accs_floats(M));
    grow(k.sc, static_cast<size_t>(KT + 3) / 4);
    if (fp8) {
      grow(k.conv, gemm_detail::gemm_conv_elems(KT));
      grow(k.xscaled, static_cast<size_t>(M) * KT * 32);
    }
  }
}

void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy) {
  packed_gemm(x, M, ldx, w, y, ldy, gemm_isa(), nullptr);
}

void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy,
                 GemmScratch* scratch) {
  packed_gemm(x, M, ldx, w, y, ldy, gemm_isa(), scratch);
}

void packed_gemm(const float* x, int M, int ldx, const PackedWeight& w, float* y, int ldy,
                 GemmIsa isa, GemmScratch* scratch) {
  if (w.empty()) return;
  packed_gemm_columns(x, M, ldx, w, 0, w.n_tiles() / 2, y, ldy, isa, scratch);
}

void packed_gemm_columns(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                         int pair_end, float* y, int ldy, GemmScratch* scratch) {
  packed_gemm_columns(x, M, ldx, w, pair_begin, pair_end, y, ldy, gemm_isa(), scratch);
}

void packed_gemm_columns(const float* x, int M, int ldx, const PackedWeight& w, int pair_begin,
                         int pair_end, float* y, int ldy, GemmIsa isa, GemmScratch* scratch) {
  if (M <= 0 || w.empty() || pair_begin >= pair_end) return;
  if (pair_begin < 0 || pair_end > w.n_tiles() / 2)
    throw std::out_of_range("packed_gemm_columns: tile pairs out of range");
  // Callers without a run-state (tests, benchmarks, tools) get a thread_local scratch; it is
  // only touched then (its first use on a thread allocates, to register its destructor).
  auto own = []() -> GemmScratch& {
    thread_local GemmScratch s;
    return s;
  };
  GemmScratch& s = scratch ? *scratch : own();
  if (ldx < w.k() || ldy < w.n()) throw std::invalid_argument("packed_gemm: row stride too small");
  switch (isa) {
    case GemmIsa::Amx:
      if (gemm_isa() != GemmIsa::Amx) break;
      gemm_detail::gemm_amx(x, M, ldx, w, pair_begin, pair_end, y, ldy, s);
      return;
    case GemmIsa::Avx512Bf16:
      if (gemm_isa() == GemmIsa::None) break;
      gemm_detail::gemm_avx512bf16(x, M, ldx, w, pair_begin, pair_end, y, ldy, s);
      return;
    case GemmIsa::None:
      break;
  }
  throw std::invalid_argument(std::string("packed_gemm: this CPU has no ") + gemm_isa_name(isa) +
                              " kernel");
}

}  // namespace dpep
