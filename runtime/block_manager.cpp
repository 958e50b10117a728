#include "runtime/block_manager.h"

#include <algorithm>
#include <stdexcept>

namespace dpep {

NodePool::NodePool(size_t slots) : mem_(new std::byte[slots * kSlot]), slots_(slots) {
  free_.reserve(slots);
  for (size_t i = slots; i-- > 0;) free_.push_back(mem_.get() + i * kSlot);
}

void* NodePool::take() {
  if (free_.empty()) return nullptr;
  void* p = free_.back();
  free_.pop_back();
  return p;
}

bool NodePool::give(void* p) {
  const std::byte* b = static_cast<const std::byte*>(p);
  if (b < mem_.get() || b >= mem_.get() + slots_ * kSlot) return false;
  free_.push_back(p);
  return true;
}

namespace {
int checked_pages(int num_pages, int page_size) {
  if (num_pages <= 0 || page_size <= 0)
    throw std::invalid_argument("KV cache needs pages of positive size");
  return num_pages;
}
}  // namespace

BlockManager::BlockManager(int num_pages, int page_size)
    : num_pages_(checked_pages(num_pages, page_size)),
      page_size_(page_size),
      info_(num_pages),
      page_tokens_(static_cast<size_t>(num_pages) * page_size),
      pool_(std::make_unique<NodePool>(num_pages)),
      index_(num_pages, PageHashHasher{}, std::equal_to<PageHash>{},
             PoolAllocator<std::pair<const PageHash, int>>(pool_.get())) {
  index_.reserve(num_pages);  // never rehashes: at most one entry per page
  events_.reserve(2 * static_cast<size_t>(num_pages));
  // Pop from the back: hand out low page ids first.
  for (int p = num_pages - 1; p >= 0; --p) free_.push_back(p);
}

bool BlockManager::can_grow(const std::vector<int>& table, int tokens) const {
  const int need = pages_for(tokens) - static_cast<int>(table.size());
  return need <= num_free();
}

int BlockManager::allocate() {
  int p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else {
    // Evict the least recently released cached page.
    p = lru_.front();
    lru_.pop_front();
    PageInfo& pi = info_[p];
    index_.erase(pi.hash);
    events_.push_back({pi.hash, false});
    pi.committed = false;
    pi.gen++;
    evictions_++;
  }
  info_[p].refs = 1;
  return p;
}

void BlockManager::grow(std::vector<int>& table, int tokens) {
  if (!can_grow(table, tokens)) throw std::logic_error("KV cache: no free page");
  while (static_cast<int>(table.size()) < pages_for(tokens)) table.push_back(allocate());
}

void BlockManager::release(std::vector<int>& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    PageInfo& pi = info_[*it];
    if (pi.refs <= 0) throw std::logic_error("KV cache: page freed twice");
    if (--pi.refs > 0) continue;
    if (pi.committed) {
      lru_.push_back(*it);
      pi.lru_it = std::prev(lru_.end());
    } else {
      free_.push_back(*it);
    }
  }
  table.clear();
}

bool BlockManager::verify(int page, const int* tokens, PageRef parent) const {
  const PageInfo& pi = info_[page];
  const int* own = page_tokens_.data() + static_cast<size_t>(page) * page_size_;
  return pi.committed && pi.parent == parent && std::equal(own, own + page_size_, tokens);
}

std::vector<int> BlockManager::match(const std::vector<PageHash>& hashes,
                                     const std::vector<int>& tokens, int max_pages) const {
  std::vector<int> out;
  PageRef parent;
  const int n = std::min<int>(max_pages, static_cast<int>(hashes.size()));
  for (int i = 0; i < n && static_cast<size_t>((i + 1) * page_size_) <= tokens.size(); ++i) {
    auto it = index_.find(hashes[i]);
    if (it == index_.end() || !verify(it->second, tokens.data() + i * page_size_, parent)) break;
    out.push_back(it->second);
    parent = ref_of(it->second);
  }
  return out;
}

int BlockManager::num_unreferenced(const std::vector<int>& pages) const {
  int n = 0;
  for (int p : pages) n += info_[p].refs == 0;
  return n;
}

void BlockManager::acquire(std::vector<int>& table, const std::vector<int>& pages) {
  for (int p : pages) {
    PageInfo& pi = info_[p];
    if (!pi.committed) throw std::logic_error("KV cache: acquiring a page that is not cached");
    if (pi.refs++ == 0) lru_.erase(pi.lru_it);
    table.push_back(p);
  }
}

PageRef BlockManager::commit(int page, const PageHash& hash, const int* tokens, PageRef parent) {
  PageInfo& pi = info_[page];
  if (pi.committed) return ref_of(page);  // a hit page, already cached
  auto it = index_.find(hash);
  if (it != index_.end()) {
    // Computed twice (two requests raced): keep the earlier copy, this one stays private.
    if (verify(it->second, tokens, parent)) return ref_of(it->second);
    return {};  // a different prefix under the same key: leave both alone
  }
  pi.committed = true;
  pi.hash = hash;
  pi.parent = parent;
  std::copy(tokens, tokens + page_size_,
            page_tokens_.begin() + static_cast<ptrdiff_t>(page) * page_size_);
  index_.emplace(hash, page);
  events_.push_back({hash, true});
  return ref_of(page);
}

void BlockManager::take_events(std::vector<CacheEvent>& out) {
  // Room for a few sequences crossing a page in one step, so that `out` rarely grows.
  if (out.capacity() < std::max<size_t>(events_.size(), 64))
    out.reserve(std::max<size_t>(events_.size(), 64));
  out.assign(events_.begin(), events_.end());
  events_.clear();  // keeps its capacity
}

std::vector<CacheEvent> BlockManager::take_events() {
  std::vector<CacheEvent> e;
  take_events(e);
  return e;
}

}  // namespace dpep
