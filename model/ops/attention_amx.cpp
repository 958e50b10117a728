// AMX tile products of the bf16 attention (layouts in attention_amx.h). This file alone is built
// with -mamx-tile -mamx-bf16; nothing here runs unless amx_init() said yes.
#include "model/ops/attention_amx.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <immintrin.h>
#define DPEP_HAVE_AMX 1
#endif

namespace dpep::attn {

bool amx_init() {
#if defined(DPEP_HAVE_AMX)
  static const bool ok = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
    if (!tile || !bf16) return false;
    // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): without it the first tile
    // instruction faults. The permission covers the whole process.
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return ok;
#else
  return false;
#endif
}

#if defined(DPEP_HAVE_AMX)
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Every tile 16 rows x 64 bytes (A: 16 x 32 bf16, B: 16 pairs x 16 x 2, C: 16 x 16 float).
void configure() {
  TileConfig c;
  for (int i = 0; i < 8; ++i) {
    c.colsb[i] = 64;
    c.rows[i] = 16;
  }
  _tile_loadconfig(&c);
}

}  // namespace

void amx_scores(const uint16_t* qv, int nc, const uint16_t* const* ktile, int nkt, int row_stride,
                float* st) {
  configure();
  const size_t ks = static_cast<size_t>(row_stride) * 2;
  int t = 0;
  // Four key tiles share each query tile: C0..C3 = tmm0..3, B = tmm4, A = tmm5..7.
  for (; t + 4 <= nkt; t += 4) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int c = 0; c < nc; ++c) {
      _tile_loadd(4, qv + static_cast<size_t>(c) * 512, 64);
      _tile_loadd(5, ktile[t] + 32 * c, ks);
      _tile_dpbf16ps(0, 5, 4);
      _tile_loadd(6, ktile[t + 1] + 32 * c, ks);
      _tile_dpbf16ps(1, 6, 4);
      _tile_loadd(7, ktile[t + 2] + 32 * c, ks);
      _tile_dpbf16ps(2, 7, 4);
      _tile_loadd(5, ktile[t + 3] + 32 * c, ks);
      _tile_dpbf16ps(3, 5, 4);
    }
    _tile_stored(0, st + static_cast<size_t>(t) * 256, 64);
    _tile_stored(1, st + static_cast<size_t>(t + 1) * 256, 64);
    _tile_stored(2, st + static_cast<size_t>(t + 2) * 256, 64);
    _tile_stored(3, st + static_cast<size_t>(t + 3) * 256, 64);
  }
  for (; t < nkt; ++t) {
    _tile_zero(0);
    for (int c = 0; c < nc; ++c) {
      _tile_loadd(4, qv + static_cast<size_t>(c) * 512, 64);
      _tile_loadd(5, ktile[t] + 32 * c, ks);
      _tile_dpbf16ps(0, 5, 4);
    }
    _tile_stored(0, st + static_cast<size_t>(t) * 256, 64);
  }
  _tile_release();
}

void amx_pv(const uint16_t* pa, int nkt32, const uint16_t* vv, int kvp, float* o) {
  configure();
  const size_t vs = static_cast<size_t>(kvp) * 4;  // bytes per key pair
  const size_t os = static_cast<size_t>(kvp) * 4;  // bytes per output row
  int d = 0;
  // 64 output columns at once: C0..C3 = tmm0..3, A (probabilities) = tmm4, B = tmm5..7.
  for (; d + 64 <= kvp; d += 64) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int kt = 0; kt < nkt32; ++kt) {
      const uint16_t* v = vv + static_cast<size_t>(kt) * 16 * kvp * 2 + static_cast<size_t>(d) * 2;
      _tile_loadd(4, pa + static_cast<size_t>(kt) * 512, 64);
      _tile_loadd(5, v, vs);
      _tile_dpbf16ps(0, 4, 5);
      _tile_loadd(6, v + 32, vs);
      _tile_dpbf16ps(1, 4, 6);
      _tile_loadd(7, v + 64, vs);
      _tile_dpbf16ps(2, 4, 7);
      _tile_loadd(5, v + 96, vs);
      _tile_dpbf16ps(3, 4, 5);
    }
    _tile_stored(0, o + d, os);
    _tile_stored(1, o + d + 16, os);
    _tile_stored(2, o + d + 32, os);
    _tile_stored(3, o + d + 48, os);
  }
  for (; d < kvp; d += 16) {
    _tile_zero(0);
    for (int kt = 0; kt < nkt32; ++kt) {
      _tile_loadd(4, pa + static_cast<size_t>(kt) * 512, 64);
      _tile_loadd(5, vv + static_cast<size_t>(kt) * 16 * kvp * 2 + static_cast<size_t>(d) * 2, vs);
      _tile_dpbf16ps(0, 4, 5);
    }
    _tile_stored(0, o + d, os);
  }
  _tile_release();
}

#else

void amx_scores(const uint16_t*, int, const uint16_t* const*, int, int, float*) {}
void amx_pv(const uint16_t*, int, const uint16_t*, int, float*) {}

#endif

}  // namespace dpep::attn
