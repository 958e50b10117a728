#include "runtime/cache_router.h"

#include <stdexcept>

namespace dpep {

CacheAwareRouter::CacheAwareRouter(int num_ranks, int page_size, bool caching)
    : page_size_(page_size),
      caching_(caching),
      cached_(num_ranks),
      pending_(num_ranks),
      work_(num_ranks, 0) {
  if (num_ranks < 1 || page_size < 1) throw std::invalid_argument("cache router: bad sizes");
}

void CacheAwareRouter::apply(int rank, const std::vector<CacheEvent>& events) {
  for (const auto& e : events) {
    if (e.added)
      cached_[rank].insert(e.hash);
    else
      cached_[rank].erase(e.hash);
  }
}

std::vector<PageHash> CacheAwareRouter::hashes_of(const std::vector<int>& prompt) const {
  // As the scheduler: the last prompt token is always computed, so at most (n-1)/ps pages hit.
  std::vector<PageHash> h;
  if (caching_ && !prompt.empty())
    extend_page_hashes(h, prompt, page_size_, (static_cast<int>(prompt.size()) - 1) / page_size_);
  return h;
}

int CacheAwareRouter::matched_pages(int rank, const std::vector<PageHash>& hashes) const {
  int n = 0;
  for (const auto& h : hashes) {
    if (!cached_[rank].count(h) && !pending_[rank].count(h)) break;
    ++n;
  }
  return n;
}

CacheAwareRouter::Choice CacheAwareRouter::pick(const std::vector<int>& prompt, int max_tokens,
                                                int rotate) const {
  const auto hashes = hashes_of(prompt);
  const int n = static_cast<int>(work_.size());
  Choice best;
  int64_t best_cost = 0;
  bool any = false;
  for (int k = 0; k < n; ++k) {
    const int r = (rotate + k) % n;
    const int m = matched_pages(r, hashes);
    const int64_t w = static_cast<int64_t>(prompt.size()) - int64_t{m} * page_size_ + max_tokens;
    const int64_t cost = work_[r] + w - kPrefixWeight * m * page_size_;
    if (!any || cost < best_cost) {
      any = true;
      best_cost = cost;
      best = {r, m, w};
    }
  }
  return best;
}

void CacheAwareRouter::assign(int64_t id, const std::vector<int>& prompt, const Choice& c) {
  auto hashes = hashes_of(prompt);
  for (const auto& h : hashes) pending_[c.rank][h]++;
  work_[c.rank] += c.work;
  assigned_[id] = {c.rank, c.work, std::move(hashes)};
}

void CacheAwareRouter::finish(int64_t id) {
  auto it = assigned_.find(id);
  if (it == assigned_.end()) return;
  auto& pend = pending_[it->second.rank];
  for (const auto& h : it->second.hashes) {
    auto p = pend.find(h);
    if (p != pend.end() && --p->second == 0) pend.erase(p);
  }
  work_[it->second.rank] -= it->second.work;
  assigned_.erase(it);
}

}  // namespace dpep
