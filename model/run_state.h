// Every buffer a forward pass writes, owned by the caller (the engine holds one) and reused step
// after step, as llama2.c's RunState and gemma.cpp's Activations are. Sized at construction from
// the config and the engine's limits; a buffer whose size depends on the step (context length,
// rows an expert receives) only grows, so once a step of a given shape has run, the next steps
// of that shape allocate nothing. Per-thread scratch is indexed by omp_get_thread_num().
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

#include "comm/expert_exchange.h"
#include "model/config.h"
#include "model/ops/attention_bf16.h"
#include "model/ops/packed_gemm.h"
#include "model/router.h"

namespace dpep {

// What one step may hold: rows (tokens) in the batch, rows whose logits are wanted, and the
// positions one sequence may reach (the float32 cache's per-row attention scratch grows with
// them: reserved up front when f32_cache, so a decode step never grows it).
struct RunStateLimits {
  int max_rows = 0;
  int max_logits_rows = 0;
  int max_context = 0;
  bool f32_cache = true;
};

// Grow-only scratch: v holds at least n elements afterwards and never shrinks. What it holds is
// scratch: when v has to move to grow, its old contents are dropped, not copied (the old block
// is freed before the new one is taken), and the new block gets a quarter more room, so that a
// run of slightly larger steps (a prefill whose MoE layers each receive a few more rows) does
// not move it at every layer. Room never used stays address space, not resident memory.
template <class T>
T* fit(std::vector<T>& v, size_t n) {
  if (v.capacity() < n) {
    std::vector<T>().swap(v);
    v.reserve(n + n / 4);
  }
  if (v.size() < n) v.resize(n);
  return v.data();
}

struct RunState {
  RunState() = default;
  // Reserves every row-sized buffer for `lim` and the per-thread scratch for omp_get_max_threads().
  RunState(const ModelConfig& c, RunStateLimits lim);

  // Makes room for the current OpenMP team size (call outside parallel regions).
  void fit_threads();

  // Floats of the float32 cache's per-row attention scratch for a context of L positions.
  static size_t attend_row_floats(int kv_lora, int width, int L);

  // Decoder: hidden, normed and delta [rows, H]; last [logits rows, H]; logits [logits rows, V].
  std::vector<float> hidden, normed, delta, last, logits;
  GemmScratch gemm;  // kernels of the dense layers and lm_head

  struct Mla {
    std::vector<float> q, qa, ckv, qc, out_lat, attn, kvb, qkv;
    GemmScratch gemm;                    // kernels of the projections
    std::vector<GemmScratch> head_gemm;  // per thread: the per-head absorbed products
    // float32 cache: work items (sequence, first row, rows > 1 = a GEMM block) and per-thread
    // scratch.
    struct Item {
      int seq, row, rows;
    };
    std::vector<Item> items;
    struct Thread {
      std::vector<float> scratch, keys;
      std::vector<const float*> pages;
    };
    std::vector<Thread> threads;
    // bf16 cache: the flash-attention kernel's workspace and its query blocks.
    MlaAttnWorkspace bf16;
    std::vector<MlaQueryBlock> blocks;
  } mla;

  struct Moe {
    std::vector<float> router_logits, topk_w;  // [rows, E], [rows, K]
    std::vector<int> topk_idx;                 // [rows, K]
    RouteScratch route;
    comm::DispatchResult dispatch;  // filled by ExpertExchange::dispatch_into
    std::vector<int> y_index;       // [recv, K] y row of each (row, slot) or -1
    // Received (row, y row) pairs grouped by local expert: expert e's are
    // pairs[offset[e] .. offset[e + 1]).
    std::vector<int> count, offset;
    std::vector<std::pair<int, int>> pairs;
    std::vector<float> y;  // [local slots, H]
    // Fused experts (bf16 mode): rows sorted by local expert [pairs, H] in (then the expert
    // outputs, written over them), gate_up products [pairs, 2 I], activations [pairs, I]; the
    // work items of the two products (expert, first and last column block).
    std::vector<float> xs, gu, h;
    struct Item {
      int expert, begin, end;
    };
    std::vector<Item> items;
    struct Thread {  // an expert thread (its kernels run nested, on it alone)
      std::vector<float> xs, ys, scratch;
      GemmScratch gemm;
    };
    std::vector<Thread> threads;
    // Shared experts [rows, H]; [rows, 2 I] of the shared experts and of the dense layers (one
    // buffer: a layer has one or the other).
    std::vector<float> shared, mlp_scratch;
    GemmScratch gemm;  // kernels of the shared experts
  } moe;

 private:
  RunStateLimits lim_;
  size_t attend_row_floats_ = 0, attend_pages_ = 0;  // reserved per thread (f32 cache)
};

}  // namespace dpep
