#include "model/batch.h"

#include "model/ops/dtypes.h"

namespace dpep {

void KvCacheView::store(int layer, int page_id, int off, const float* v) const {
  if (!bf16) {
    float* p = page(layer, page_id);
    for (int d = 0; d < width; ++d) p[offset(width, d, off)] = v[d];
    return;
  }
  auto* p = reinterpret_cast<uint16_t*>(page(layer, page_id));
  for (int d = 0; d < width; ++d) p[score_offset(width, d, off)] = f32_to_bf16(v[d]);
  for (int d = 0; d < kv_lora; ++d)
    p[value_offset(width, kv_lora, page_size, d, off)] = f32_to_bf16(v[d]);
}

}  // namespace dpep
