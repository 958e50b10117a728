// The two tile products of model/ops/attention_bf16.cpp, on AMX (attention_amx.cpp, built with
// -mamx-tile -mamx-bf16) and as AVX512-BF16 dot products (attention_bf16.cpp). Same data
// layouts for both, all tiles 16 rows x 64 bytes:
//  - qv: nc tiles [16 dim pairs][16 query rows][2] (the queries, VNNI: B operand);
//  - key tile t: 16 consecutive cache rows from ktile[t], row_stride elements apart (A operand);
//  - st: [16 * nkt keys][16 query rows] float32 scores (S^T = K Q^T);
//  - pa: nkt32 tiles [16 query rows][32 keys] bf16 probabilities (A operand);
//  - vv: [16 * nkt32 key pairs][kvp dims][2] bf16 values (VNNI: B operand);
//  - o: [16 query rows][kvp] float32 = P V.
#pragma once
#include <cstdint>

namespace dpep::attn {

void amx_scores(const uint16_t* qv, int nc, const uint16_t* const* ktile, int nkt, int row_stride,
                float* st);
void amx_pv(const uint16_t* pa, int nkt32, const uint16_t* vv, int kvp, float* o);
// Asks Linux for the tile state (once per process); false when the CPU or the OS lacks AMX.
bool amx_init();

}  // namespace dpep::attn
