// Keys of cached KV pages: a 128-bit hash chain over full pages of tokens (vLLM's scheme).
// Page i's key hashes page i-1's key and the page's tokens, so equal keys mean equal prefixes
// up to a 128-bit collision; the block manager also checks the tokens on every hit.
// Shared by the ranks (block manager) and rank 0 (cache-aware routing): both must agree.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace dpep {

struct PageHash {
  uint64_t lo = 0, hi = 0;
  bool operator==(const PageHash& o) const { return lo == o.lo && hi == o.hi; }
  bool operator!=(const PageHash& o) const { return !(*this == o); }
};

struct PageHashHasher {
  size_t operator()(const PageHash& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 31)); }
};

// FNV-1a, 128-bit variant, over the parent key and the page's token ids.
inline PageHash hash_page(const PageHash& parent, const int* tokens, int n) {
  using u128 = unsigned __int128;
  const u128 prime = (static_cast<u128>(0x0000000001000000ULL) << 64) | 0x000000000000013BULL;
  u128 h = (static_cast<u128>(0x6c62272e07bb0142ULL) << 64) | 0x62b821756295c58dULL;
  auto mix = [&](uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= static_cast<u128>((v >> (8 * b)) & 0xff);
      h *= prime;
    }
  };
  mix(parent.lo);
  mix(parent.hi);
  for (int i = 0; i < n; ++i) mix(static_cast<uint32_t>(tokens[i]));
  return {static_cast<uint64_t>(h), static_cast<uint64_t>(h >> 64)};
}

// Extends `hashes` to cover every full page of `tokens` (at most `max_pages` pages).
inline void extend_page_hashes(std::vector<PageHash>& hashes, const std::vector<int>& tokens,
                               int page_size, int max_pages = 1 << 30) {
  const int full = static_cast<int>(tokens.size()) / page_size;
  const int want = full < max_pages ? full : max_pages;
  for (int i = static_cast<int>(hashes.size()); i < want; ++i)
    hashes.push_back(
        hash_page(i ? hashes[i - 1] : PageHash{}, tokens.data() + i * page_size, page_size));
}

}  // namespace dpep
