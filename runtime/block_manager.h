// Bookkeeping of KV cache pages: reference counts, a free list, and the prefix cache. No tensors.
// Prefix cache (vLLM's automatic prefix caching): a full page whose latents are computed is
// committed under its hash-chain key (runtime/prefix_hash.h). Pages are shared by reference
// count; a cached page nobody references stays cached on an LRU list and is evicted (oldest
// first) only when a free page is needed. A hit is verified against the page's tokens and its
// parent page (id and generation), so even a hash collision never hands out another prompt's
// pages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "runtime/prefix_hash.h"

namespace dpep {

// A committed page as a parent reference: the id plus the generation it had (bumped on every
// eviction), so a reused page id never passes for the evicted one.
struct PageRef {
  int page = -1;
  uint32_t gen = 0;
  bool operator==(const PageRef& o) const { return page == o.page && gen == o.gen; }
};

// A page committed to (added) or evicted from the cache; rank 0 routes with these, in order.
struct CacheEvent {
  PageHash hash;
  bool added = false;
};

// Fixed-size slots carved from one block allocated up front. The prefix index holds at most one
// node per page, so its nodes come from here and a commit in a decode step allocates nothing.
class NodePool {
 public:
  static constexpr size_t kSlot = 64;  // bytes; an index node is about 40
  explicit NodePool(size_t slots);
  void* take();        // null when every slot is in use
  bool give(void* p);  // false if p is not one of the slots
 private:
  std::unique_ptr<std::byte[]> mem_;
  size_t slots_;
  std::vector<void*> free_;
};

// Single objects from the pool while it has slots (other requests, e.g. the bucket array, and
// any overflow go to the heap).
template <class T>
struct PoolAllocator {
  using value_type = T;
  NodePool* pool = nullptr;
  explicit PoolAllocator(NodePool* p) : pool(p) {}
  template <class U>
  PoolAllocator(const PoolAllocator<U>& o) : pool(o.pool) {}
  T* allocate(size_t n) {
    if (n == 1 && sizeof(T) <= NodePool::kSlot && alignof(T) <= 16 && pool)
      if (void* p = pool->take()) return static_cast<T*>(p);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) {
    if (n == 1 && pool && pool->give(p)) return;
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const PoolAllocator<U>& o) const {
    return pool == o.pool;
  }
};

class BlockManager {
 public:
  BlockManager(int num_pages, int page_size);
  int page_size() const { return page_size_; }
  int num_pages() const { return num_pages_; }
  // Pages that can be handed out: never used or freed, plus cached ones nobody references.
  int num_free() const { return static_cast<int>(free_.size() + lru_.size()); }
  int num_cached() const { return static_cast<int>(index_.size()); }
  int num_evictable() const { return static_cast<int>(lru_.size()); }
  int64_t num_evictions() const { return evictions_; }
  int pages_for(int tokens) const { return (tokens + page_size_ - 1) / page_size_; }

  // Can `table` grow to hold `tokens` positions?
  bool can_grow(const std::vector<int>& table, int tokens) const;
  void grow(std::vector<int>& table, int tokens);  // throws std::logic_error if it cannot
  // Drops the table's references (last page first, so a prefix outlives its tail in the LRU)
  // and clears the table.
  void release(std::vector<int>& table);

  // Longest run of committed pages matching `hashes` and `tokens` from the start (at most
  // `max_pages`). Takes no reference.
  std::vector<int> match(const std::vector<PageHash>& hashes, const std::vector<int>& tokens,
                         int max_pages) const;
  // How many of `pages` sit unreferenced on the LRU (taking them uses up free pages).
  int num_unreferenced(const std::vector<int>& pages) const;
  // Appends `pages` (from match) to `table`, taking a reference on each.
  void acquire(std::vector<int>& table, const std::vector<int>& pages);
  // Commits the computed, full page `page` holding `tokens` (page_size of them) under `hash`,
  // after `parent` (invalid for a sequence's first page). Returns the page that now stands for
  // this prefix: `page` itself, or an equal page committed earlier (then `page` stays private);
  // page -1 if the key is taken by a different prefix (a collision: nothing is committed).
  PageRef commit(int page, const PageHash& hash, const int* tokens, PageRef parent);
  PageRef ref_of(int page) const { return {page, info_[page].gen}; }
  std::vector<CacheEvent> take_events();
  // The same into `out` (replaced, its capacity reused: a warm loop allocates nothing).
  void take_events(std::vector<CacheEvent>& out);

 private:
  struct PageInfo {
    int refs = 0;
    uint32_t gen = 0;
    bool committed = false;
    PageHash hash;
    PageRef parent;
    std::list<int>::iterator lru_it;
  };
  int allocate();
  bool verify(int page, const int* tokens, PageRef parent) const;

  int num_pages_, page_size_;
  std::vector<int> free_;
  std::vector<PageInfo> info_;
  std::vector<int> page_tokens_;    // [num_pages, page_size]: the tokens of committed pages
  std::list<int> lru_;              // unreferenced committed pages, least recently released first
  std::unique_ptr<NodePool> pool_;  // before index_: outlives it
  std::unordered_map<PageHash, int, PageHashHasher, std::equal_to<PageHash>,
                     PoolAllocator<std::pair<const PageHash, int>>>
      index_;
  std::vector<CacheEvent> events_;  // reserved for a step's worst case (every page, twice)
  int64_t evictions_ = 0;
};

}  // namespace dpep
