// Storage of the paged MLA latent cache for one rank (layouts: KvCacheView in model/batch.h).
#pragma once
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include "model/batch.h"

namespace dpep {

class KvCache {
 public:
  // bf16: one bf16 row per token (KvCacheView::bf16); kv_lora is the value part of a row.
  KvCache(int num_layers, int num_pages, int page_size, int width, bool bf16 = false,
          int kv_lora = 0);
  const KvCacheView& view() const { return view_; }
  static size_t bytes_per_token(int num_layers, int width, bool bf16 = false, int kv_lora = 0) {
    (void)kv_lora;
    return static_cast<size_t>(num_layers) * KvCacheView::bytes_per_token_layer(width, bf16);
  }

 private:
  // Not zero-filled: the OS maps pages on first touch, and low page ids are handed out first,
  // so a large cache costs memory only as it is used.
  // 64-byte aligned: bf16 rows are whole cache lines.
  struct AlignedDelete {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<float[], AlignedDelete> data_;
  KvCacheView view_;
};

// Pages for a cache sized by tokens, or by a fraction of the memory available now (lmdeploy's
// --cache-max-entry-count). Returns at least one page.
int kv_pages_for_tokens(long long tokens, int page_size);
int kv_pages_for_fraction(double fraction, size_t bytes_per_token, int page_size);

}  // namespace dpep
