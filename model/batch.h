// What one forward pass runs on: a flattened batch of token rows from several sequences, and a
// view of the paged MLA latent cache. Plain data; the runtime owns the storage and pages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dpep {

// One sequence's part of the batch: rows [row_begin, row_begin + num_rows) of the batch are its
// tokens at positions start_pos.. ; they attend to cache positions [0, start_pos + num_rows).
struct SequenceSlice {
  int row_begin = 0;
  int num_rows = 0;
  int start_pos = 0;
  const int* block_table = nullptr;  // pages holding positions [i*page_size, (i+1)*page_size)
  int num_blocks = 0;
};

struct ForwardBatch {
  std::vector<int> token_ids;       // [T]
  std::vector<int> positions;       // [T]
  std::vector<SequenceSlice> seqs;  // disjoint, covering all T rows
  std::vector<int> logits_rows;     // rows whose logits the caller wants, in output order
  int num_rows() const { return static_cast<int>(token_ids.size()); }
};

// Paged cache of the compressed latent c [kv_lora] and the roped key k_pe [rope] per token.
// float32 (exact mode): storage [layer][page][slot block][d][16], d < kv_lora + rope: within a
// page, blocks of 16 slots, each holding every dimension as one 16-lane vector (see
// model/ops/attention_kernel.h). page_size is a multiple of 16.
// bf16 (bf16 matmul mode): ONE copy, [layer][page][slot][row_stride] bf16, a token's
// [kv_lora | rope | zero padding] row, row_stride = width rounded up to 32 (64 bytes). The
// AMX kernel (model/ops/attention_bf16.h) reads the rows directly as the A operand of the
// scores S^T = K Q^T, and the first kv_lora columns, interleaved by pairs of slots per key
// block on the fly, as the B operand of P V.
struct KvCacheView {
  float* data = nullptr;
  int num_layers = 0;
  int num_pages = 0;
  int page_size = 0;
  int width = 0;  // kv_lora + rope
  bool bf16 = false;
  int kv_lora = 0;  // the part of a row that is also the value
  static constexpr int kSlotBlock = 16;

  // bf16 rows: elements per slot (64-byte multiple).
  static int bf16_row_stride(int width) { return (width + 31) / 32 * 32; }
  // Cache bytes of one token in one layer: the one statement of the layout's size (the KV cache
  // and the memory plan both ask it).
  static size_t bytes_per_token_layer(int width, bool bf16) {
    return bf16 ? static_cast<size_t>(bf16_row_stride(width)) * 2 : width * sizeof(float);
  }
  size_t page_floats() const {
    return bf16 ? static_cast<size_t>(bf16_row_stride(width)) * page_size / 2
                : static_cast<size_t>(width) * page_size;
  }
  float* page(int layer, int page) const {
    return data + (static_cast<size_t>(layer) * num_pages + page) * page_floats();
  }
  // float32 pages: offset of (dimension d, slot) inside a page.
  static size_t offset(int width, int d, int slot) {
    return (static_cast<size_t>(slot / kSlotBlock) * width + d) * kSlotBlock + slot % kSlotBlock;
  }
  // bf16 pages: the row of `slot` (row_stride elements).
  const uint16_t* bf16_row(int layer, int page_id, int slot) const {
    return reinterpret_cast<const uint16_t*>(page(layer, page_id)) +
           static_cast<size_t>(slot) * bf16_row_stride(width);
  }
  // Writes one token's [width] values into slot `off` of `page`.
  void store(int layer, int page_id, int off, const float* v) const;
};

}  // namespace dpep
