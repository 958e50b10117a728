// Memory for packed weight matrices: carved from large 2 MB-aligned slabs that ask Linux for
// transparent huge pages. Decode streams every weight once per step; with 4 KB pages a
// matrix-vector product read at about half the DRAM rate on the development machine (a TLB
// miss every 4 KB, and the hardware prefetcher restarts at every 4 KB boundary), and a model's
// matrices are mostly far smaller than one huge page (an expert of the bench preset is 0.5 MB),
// so each needs company in a slab to get one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace dpep {

// `bytes` of 64-byte-aligned memory, zeroed, that stays valid while the returned pointer (or a
// copy) lives. A freed block's range is reused by later blocks of its slab (first fit), and a
// slab is freed with the last block carved from it. Thread-safe.
std::shared_ptr<uint8_t> weight_alloc(size_t bytes);

}  // namespace dpep
