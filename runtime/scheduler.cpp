#include "runtime/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

namespace dpep {

Scheduler::Scheduler(SchedulerConfig cfg, BlockManager& blocks) : cfg_(cfg), blocks_(blocks) {}

bool Scheduler::add(std::unique_ptr<Sequence> seq) {
  const int need = seq->num_prompt + seq->req.sampling.max_tokens;
  const int cache_tokens = blocks_.num_pages() * blocks_.page_size();
  std::string err;
  if (seq->num_prompt == 0)
    err = "the prompt is empty";
  else if (cfg_.max_model_len > 0 && need > cfg_.max_model_len)
    err = fmt::format(
        "prompt ({} tokens) plus max_tokens ({}) exceeds the model's context of {} tokens",
        seq->num_prompt, seq->req.sampling.max_tokens, cfg_.max_model_len);
  else if (need > cache_tokens)
    err = fmt::format(
        "prompt ({} tokens) plus max_tokens ({}) can never fit in the KV cache of {} tokens",
        seq->num_prompt, seq->req.sampling.max_tokens, cache_tokens);
  if (!err.empty()) {
    seq->status = SeqStatus::Finished;
    seq->finish = FinishReason::Error;
    seq->error = err;
    rejected_.push_back(std::move(seq));
    return false;
  }
  seq->status = SeqStatus::Waiting;
  waiting_.push_back(std::move(seq));
  return true;
}

std::vector<std::unique_ptr<Sequence>> Scheduler::take_rejected() {
  return std::move(rejected_);
}

void Scheduler::preempt(Sequence* s) {
  blocks_.release(s->block_table);
  s->num_computed = 0;
  s->num_committed_pages = 0;
  s->last_committed_page = -1;
  s->status = SeqStatus::Waiting;
  s->num_preemptions++;
  preemptions_++;
  auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p.get() == s; });
  waiting_.push_front(std::move(*it));
  running_.erase(it);
}

void Scheduler::schedule(std::vector<ScheduledChunk>& out) {
  out.clear();
  int budget = std::min(cfg_.max_prefill_tokens, prefill_budget_);
  // 1. Running sequences, oldest first; make room by preempting the newest.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* s = running_[i].get();
    const int remaining = static_cast<int>(s->tokens.size()) - s->num_computed;
    int n = remaining == 1 ? 1 : std::min(remaining, std::max(budget, 0));
    if (n <= 0) continue;
    while (!blocks_.can_grow(s->block_table, s->num_computed + n)) {
      Sequence* victim = running_.back().get();
      preempt(victim);
      if (victim == s) break;
    }
    if (s->status != SeqStatus::Running) break;  // s itself was preempted: nothing after it remains
    blocks_.grow(s->block_table, s->num_computed + n);
    if (remaining > 1) budget -= n;
    out.push_back(
        {s, s->num_computed, n, s->num_computed + n == static_cast<int>(s->tokens.size())});
  }
  // 2. Admit waiting sequences while the batch, the budget and the pages allow.
  const int ps = blocks_.page_size();
  std::unordered_set<PageHash, PageHashHasher> in_flight;  // pages running sequences compute
  auto mark_in_flight = [&](const Sequence* s) {
    for (size_t i = s->num_computed / ps; i < s->page_hashes.size(); ++i)
      in_flight.insert(s->page_hashes[i]);
  };
  if (cfg_.prefix_caching && !waiting_.empty())
    for (const auto& r : running_) mark_in_flight(r.get());
  for (size_t wi = 0; wi < waiting_.size() &&
                      static_cast<int>(running_.size()) < cfg_.max_batch_size && budget > 0;) {
    Sequence* s = waiting_[wi].get();
    const int total = static_cast<int>(s->tokens.size());
    std::vector<int> hit;
    if (cfg_.prefix_caching) {
      extend_page_hashes(s->page_hashes, s->tokens, ps);
      const int max_hit = (total - 1) / ps;
      hit = blocks_.match(s->page_hashes, s->tokens, max_hit);
      if (static_cast<int>(hit.size()) < max_hit && in_flight.count(s->page_hashes[hit.size()])) {
        prefix_stats_.deferred++;
        ++wi;  // its next page is being computed: take it from the cache next step
        continue;
      }
    }
    // Admit only if the whole prompt fits now (avoids admitting what would be preempted at once).
    const int need = blocks_.pages_for(total) - static_cast<int>(hit.size());
    if (need > blocks_.num_free() - blocks_.num_unreferenced(hit)) break;
    blocks_.acquire(s->block_table, hit);
    s->num_computed = static_cast<int>(hit.size()) * ps;
    s->num_committed_pages = static_cast<int>(hit.size());
    s->last_committed_page = hit.empty() ? -1 : hit.back();
    if (!hit.empty()) s->last_committed_gen = blocks_.ref_of(hit.back()).gen;
    s->num_cached_tokens = s->num_computed;
    prefix_stats_.query_tokens += total;
    prefix_stats_.hit_tokens += s->num_computed;
    const int n = std::min(total - s->num_computed, budget);
    blocks_.grow(s->block_table, s->num_computed + n);
    s->status = SeqStatus::Running;
    running_.push_back(std::move(waiting_[wi]));
    waiting_.erase(waiting_.begin() + static_cast<long>(wi));
    budget -= n;
    out.push_back({s, s->num_computed, n, s->num_computed + n == total});
    if (cfg_.prefix_caching) mark_in_flight(s);
  }
}

std::vector<std::unique_ptr<Sequence>> Scheduler::postprocess(
    const std::vector<ScheduledChunk>& chunks) {
  for (const auto& c : chunks) {
    c.seq->num_computed = c.start + c.len;
    if (cfg_.prefix_caching) commit_pages(c.seq);
  }
  std::vector<std::unique_ptr<Sequence>> done;
  for (size_t i = 0; i < running_.size();) {
    if (running_[i]->status == SeqStatus::Finished) {
      blocks_.release(running_[i]->block_table);
      done.push_back(std::move(running_[i]));
      running_.erase(running_.begin() + i);
    } else {
      ++i;
    }
  }
  return done;
}

void Scheduler::commit_pages(Sequence* s) {
  const int ps = blocks_.page_size();
  const int full = s->num_computed / ps;
  if (s->num_committed_pages >= full) return;
  extend_page_hashes(s->page_hashes, s->tokens, ps, full);
  for (int i = s->num_committed_pages; i < full; ++i) {
    const PageRef parent{s->last_committed_page, s->last_committed_gen};
    const PageRef got =
        blocks_.commit(s->block_table[i], s->page_hashes[i], s->tokens.data() + i * ps, parent);
    if (got.page < 0) {  // key collision: commit nothing more of this sequence
      s->num_committed_pages = static_cast<int>(s->tokens.size());
      return;
    }
    s->last_committed_page = got.page;
    s->last_committed_gen = got.gen;
    s->num_committed_pages = i + 1;
  }
}

std::unique_ptr<Sequence> Scheduler::abort(int64_t id) {
  auto finish = [&](std::unique_ptr<Sequence> s) {
    blocks_.release(s->block_table);
    s->status = SeqStatus::Finished;
    s->finish = FinishReason::Abort;
    return s;
  };
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if ((*it)->req.id == id) {
      auto s = std::move(*it);
      waiting_.erase(it);
      return finish(std::move(s));
    }
  for (auto it = running_.begin(); it != running_.end(); ++it)
    if ((*it)->req.id == id) {
      auto s = std::move(*it);
      running_.erase(it);
      return finish(std::move(s));
    }
  return nullptr;
}

}  // namespace dpep
