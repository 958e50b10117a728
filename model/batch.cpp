#include "model/batch.h"

#include "model/ops/dtypes.h"

namespace dpep {

void KvCacheView::store(int layer, int page_id, int off, const float* v) const {
  if (!bf16) {
    float* p = page(layer, page_id);
    for (int d = 0; d < width; ++d) p[offset(width, d, off)] = v[d];
    return;
  }
  auto* p = const_cast<uint16_t*>(bf16_row(layer, page_id, off));
  const int stride = bf16_row_stride(width);
  for (int d = 0; d < width; ++d) p[d] = f32_to_bf16(v[d]);
  for (int d = width; d < stride; ++d) p[d] = 0;  // the kernels read whole 64-byte chunks
}

}  // namespace dpep
