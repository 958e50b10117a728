// Rank 0's exact view of every rank's prefix cache, for --strategy cache_aware.
// Ranks report each page they commit to or evict from their cache (by hash-chain key) in the
// per-step control messages; rank 0 also knows which prompts it has assigned and not yet seen
// finish (their pages are being computed there). Each rank's backlog is the work (uncached
// prompt tokens + output tokens) of its unfinished requests. A request goes to the rank with the
// least backlog + its own work there - kPrefixWeight x the prompt tokens already known there:
// it follows its longest known prefix unless that rank's backlog exceeds another's by more than
// (1 + kPrefixWeight) times the prefix (the prefill it saves, plus the bonus). A prefix counts
// more than the one prefill it saves: computing it on a second rank also splits the group's
// later requests over two caches.
#pragma once
#include <cstdint>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/prefix_hash.h"

namespace dpep {

class CacheAwareRouter {
 public:
  static constexpr int64_t kPrefixWeight = 4;
  // caching = false (--disable-prefix-caching): no prefix is ever known, only the backlog counts.
  CacheAwareRouter(int num_ranks, int page_size, bool caching = true);
  int page_size() const { return page_size_; }

  // Cache changes a rank reported, in order.
  void apply(int rank, const std::vector<CacheEvent>& events);
  // Leading pages of `prompt` rank `rank` has cached or is computing.
  int matched_pages(int rank, const std::vector<PageHash>& hashes) const;

  struct Choice {
    int rank = 0;
    int matched_pages = 0;
    int64_t work = 0;  // tokens this request adds to the rank's backlog
  };
  // Chooses a rank for a prompt (ties go to the first rank from `rotate`, in order).
  Choice pick(const std::vector<int>& prompt, int max_tokens, int rotate) const;
  // Records an assignment (its pages count as known on that rank until it finishes).
  void assign(int64_t id, const std::vector<int>& prompt, const Choice& c);
  void finish(int64_t id);
  int64_t work(int rank) const { return work_[rank]; }
  size_t num_cached(int rank) const { return cached_[rank].size(); }

 private:
  std::vector<PageHash> hashes_of(const std::vector<int>& prompt) const;
  int page_size_;
  bool caching_;
  std::vector<std::unordered_set<PageHash, PageHashHasher>> cached_;
  std::vector<std::unordered_map<PageHash, int, PageHashHasher>> pending_;  // page -> requests
  std::vector<int64_t> work_;
  struct Assigned {
    int rank;
    int64_t work;
    std::vector<PageHash> hashes;
  };
  std::map<int64_t, Assigned> assigned_;
};

}  // namespace dpep
