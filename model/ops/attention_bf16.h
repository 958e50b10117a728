// Absorbed-MLA attention over the one-copy bf16 latent cache (KvCacheView::bf16), for decode
// rows and prefill chunks alike: flash attention in fixed key splits, the two products as
// AVX512-BF16 dot products or on AMX tiles (run-time choice; AMX opt-in, see MlaBackend).
//
// Determinism: the keys of every query row are cut into splits of kMlaKeySplit positions
// counted from position 0. A split's partial result (max, sum, unnormalised output) depends only
// on the row's query, its position and the cached keys, never on the other rows in its tile,
// the thread count, the page size or how the prompt was chunked; partials are merged from left
// to right by one function. So a row's output is bitwise the same for 1 or N threads, chunked or
// unchunked prefill, and decode or prefill at the same position.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dpep {

constexpr int kMlaKeySplit = 128;  // keys per split (a multiple of 32)

struct MlaAttnShape {
  int heads = 0;
  int width = 0;    // kv_lora + rope
  int kv_lora = 0;  // the value part of a cached row
};

// One layer of the bf16 cache: page i starts at base + i * page_elems; slot s of a page is a
// row of row_stride elements (KvCacheView::bf16_row_stride).
struct MlaBf16Pages {
  const uint16_t* base = nullptr;
  size_t page_elems = 0;
  int page_size = 0;   // multiple of 16
  int row_stride = 0;  // multiple of 32
};

// tq consecutive query tokens of one sequence at positions pos0 .. pos0 + tq - 1; token t sees
// keys [0, pos0 + t] through block_table (page of position p: block_table[p / page_size]).
struct MlaQueryBlock {
  const float* qc = nullptr;  // [tq, heads, width], already scaled by the softmax scale
  float* out = nullptr;       // [tq, heads, kv_lora] = softmax(qc . keys) . values
  int tq = 0;
  int pos0 = 0;
  const int* block_table = nullptr;
};

// Scratch of the kernel, kept by its owner across calls: buffers grow to the largest shape
// seen and are then reused, so a steady decode loop allocates nothing here.
struct MlaAttnWorkspace {
  struct Thread {
    std::vector<uint16_t> qv, vv, pt, pa;
    std::vector<float> st, os, ms, ls, acc, accm, accl;
  };
  std::vector<Thread> threads;
  std::vector<float> partial;  // split mode: [block][split][rows][kv_lora_padded + 2]
  std::vector<uint16_t> qv;    // split mode: each block's queries, packed once
  std::vector<std::pair<int, int>> items, rows;
  std::vector<size_t> offset, qv_offset;
  // Reserves the split-mode buffers for one decode row of up to max_context positions, the case
  // split mode is for (one long sequence on every core): its decode never grows them as the
  // context grows (capacity only: pages are touched as used; V3 at 160K positions: 340 MB).
  // Several long rows at once in split mode still grow them, geometrically.
  void reserve_decode(const MlaAttnShape& shape, int max_context);
};

// Query tokens per block: about 256 rows (tokens x heads) per block, at least one token.
int mla_query_block_tokens(int heads);

// Runs every block (OpenMP threads over blocks, or over (block, split) pairs when there are
// fewer blocks than threads: one long sequence then uses every core).
void mla_attention_bf16(const MlaAttnShape& shape, const MlaBf16Pages& kv,
                        const MlaQueryBlock* blocks, int num_blocks, MlaAttnWorkspace& ws);

// AVX512-BF16 by default; AMX when DPEP_ATTENTION_AMX=1 and the CPU has tiles.
enum class MlaBackend { Amx, Avx512Bf16 };
// AMX tiles present and granted by the kernel (asked once per process).
bool mla_amx_available();
MlaBackend mla_backend();
// Tests: force a backend (throws std::runtime_error for AMX on a CPU without it).
void mla_set_backend(MlaBackend b);

}  // namespace dpep
