// runtime/kv_cache and its view (model/batch.h) without a model: every (layer, page, slot) holds
// what was stored there, in both layouts, and the sizes agree with bytes_per_token.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "model/ops/dtypes.h"
#include "runtime/kv_cache.h"

using namespace dpep;

namespace {

float value(int layer, int page, int slot, int d) {
  return static_cast<float>(((layer * 7 + page) * 64 + slot) % 97) * 0.25f - 3.0f + d * 0.5f;
}

}  // namespace

TEST(KvCache, Float32PagesHoldWhatWasStoredAtEverySlot) {
  const int layers = 2, pages = 3, ps = 32, width = 24;
  KvCache kv(layers, pages, ps, width);
  const KvCacheView& v = kv.view();
  std::vector<float> row(width);
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < pages; ++p)
      for (int s = 0; s < ps; ++s) {
        for (int d = 0; d < width; ++d) row[d] = value(l, p, s, d);
        v.store(l, p, s, row.data());
      }
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < pages; ++p)
      for (int s = 0; s < ps; ++s)
        for (int d = 0; d < width; ++d)
          ASSERT_EQ(v.page(l, p)[KvCacheView::offset(width, d, s)], value(l, p, s, d))
              << l << " " << p << " " << s << " " << d;
  EXPECT_EQ(KvCache::bytes_per_token(layers, width), static_cast<size_t>(layers) * width * 4);
}

TEST(KvCache, Bf16RowsHoldOneRoundedCopyPaddedTo64Bytes) {
  const int layers = 2, pages = 2, ps = 16, kv_lora = 16, width = kv_lora + 8;
  KvCache kv(layers, pages, ps, width, /*bf16=*/true, kv_lora);
  const KvCacheView& v = kv.view();
  const int stride = KvCacheView::bf16_row_stride(width);
  EXPECT_EQ(stride % 32, 0);
  EXPECT_GE(stride, width);
  std::vector<float> row(width);
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < pages; ++p)
      for (int s = 0; s < ps; ++s) {
        for (int d = 0; d < width; ++d) row[d] = value(l, p, s, d);
        v.store(l, p, s, row.data());
      }
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < pages; ++p)
      for (int s = 0; s < ps; ++s) {
        const uint16_t* r = v.bf16_row(l, p, s);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(r) % 64, 0u);
        for (int d = 0; d < width; ++d)
          ASSERT_EQ(r[d], f32_to_bf16(value(l, p, s, d))) << l << " " << p << " " << s << " " << d;
      }
  // One copy: stride bf16 values per token and layer.
  EXPECT_EQ(KvCache::bytes_per_token(layers, width, true, kv_lora),
            static_cast<size_t>(layers) * stride * 2);
}
