#include "runtime/engine.h"

#include <algorithm>
#include <chrono>

#include "comm/clock.h"
#include "runtime/sampler.h"

namespace dpep {
namespace {
int pages_for(const EngineConfig& cfg, const Model& m) {
  if (cfg.kv_cache_tokens > 0) return kv_pages_for_tokens(cfg.kv_cache_tokens, cfg.page_size);
  return kv_pages_for_fraction(
      cfg.cache_max_entry_count,
      KvCache::bytes_per_token(m.config().num_hidden_layers, m.kv_width(), m.kv_cache_bf16(),
                               static_cast<int>(m.config().kv_lora_rank)),
      cfg.page_size);
}

bool is_stop(const Sequence& s, int token, int eos) {
  const auto& p = s.req.sampling;
  if (!p.ignore_eos && token == eos) return true;
  return std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) !=
         p.stop_token_ids.end();
}
}  // namespace

Engine::Engine(const Model& model, comm::ExpertExchange& ex, const EngineConfig& cfg)
    : model_(model),
      ex_(ex),
      cfg_(cfg),
      blocks_(pages_for(cfg, model), cfg.page_size),
      cache_(static_cast<int>(model.config().num_hidden_layers), blocks_.num_pages(), cfg.page_size,
             model.kv_width(), model.kv_cache_bf16(),
             static_cast<int>(model.config().kv_lora_rank)),
      sched_(SchedulerConfig{cfg.max_batch_size, cfg.max_prefill_tokens,
                             static_cast<int>(model.config().max_position_embeddings),
                             cfg.prefix_caching},
             blocks_),
      // A step holds every running sequence's decode row plus at most a prefill budget, and
      // never more rows than the cache has slots.
      run_state_(model.make_run_state(
          static_cast<int>(std::min<long long>(
              static_cast<long long>(cfg.max_batch_size) + cfg.max_prefill_tokens,
              static_cast<long long>(blocks_.num_pages()) * cfg.page_size)),
          cfg.max_batch_size,
          static_cast<int>(
              std::min<long long>(model.config().max_position_embeddings,
                                  static_cast<long long>(blocks_.num_pages()) * cfg.page_size)))) {
  if (cfg.page_size % KvCacheView::kSlotBlock != 0)
    throw std::invalid_argument("the KV page size must be a multiple of 16");
}

void Engine::add(const Request& r) {
  auto s = std::make_unique<Sequence>();
  s->req = r;
  s->tokens = r.prompt;
  s->num_prompt = static_cast<int>(r.prompt.size());
  const int vocab = static_cast<int>(model_.config().vocab_size);
  for (int t : r.prompt)
    if (t < 0 || t >= vocab) {
      pending_events_.push_back({r.id,
                                 {},
                                 {},
                                 FinishReason::Error,
                                 "token id " + std::to_string(t) + " is outside the vocabulary",
                                 s->num_prompt});
      return;
    }
  if (r.sampling.max_tokens <= 0) {
    pending_events_.push_back({r.id, {}, {}, FinishReason::Length, "", s->num_prompt});
    return;
  }
  // Room for every token, page and page key the request can reach, so that its decode steps
  // never grow these vectors (requests that can never fit are rejected below).
  const long long cache_tokens = static_cast<long long>(blocks_.num_pages()) * blocks_.page_size();
  const long long need = static_cast<long long>(s->num_prompt) + r.sampling.max_tokens;
  if (need <= cache_tokens) {
    s->tokens.reserve(need);
    s->block_table.reserve(blocks_.pages_for(static_cast<int>(need)));
    s->page_hashes.reserve(blocks_.pages_for(static_cast<int>(need)));
  }
  if (!sched_.add(std::move(s)))
    for (auto& rej : sched_.take_rejected())
      pending_events_.push_back(
          {rej->req.id, {}, {}, FinishReason::Error, rej->error, rej->num_prompt});
}

void Engine::abort(int64_t id) {
  if (auto s = sched_.abort(id))
    pending_events_.push_back({id, {}, {}, FinishReason::Abort, "", s->num_prompt});
}

StepReport Engine::step() {
  StepReport rep;
  step(rep);
  return rep;
}

void Engine::step(StepReport& rep) {
  // Events reuse the report's elements (and their vectors' capacity) from the last step.
  size_t num_events = 0;
  auto next_event = [&]() -> RequestEvent& {
    if (num_events == rep.events.size()) rep.events.emplace_back();
    RequestEvent& ev = rep.events[num_events++];
    ev.new_tokens.clear();
    ev.new_logprobs.clear();
    ev.error.clear();
    ev.finish = FinishReason::None;
    return ev;
  };
  for (auto& p : pending_events_) next_event() = std::move(p);
  pending_events_.clear();
  rep.decode_rows = rep.prefill_rows = 0;
  double t0 = now_seconds();
  std::vector<ScheduledChunk>& chunks = chunks_;
  sched_.schedule(chunks);
  // Flatten the step into one batch: rows of each chunk are consecutive.
  ForwardBatch& b = batch_;
  b.token_ids.clear();
  b.positions.clear();
  b.seqs.clear();
  b.logits_rows.clear();
  std::vector<int>& sample_chunk = sample_chunk_;
  sample_chunk.clear();
  for (int ci = 0; ci < static_cast<int>(chunks.size()); ++ci) {
    const auto& c = chunks[ci];
    const int begin = b.num_rows();
    for (int i = 0; i < c.len; ++i) {
      b.token_ids.push_back(c.seq->tokens[c.start + i]);
      b.positions.push_back(c.start + i);
    }
    b.seqs.push_back({begin, c.len, c.start, c.seq->block_table.data(),
                      static_cast<int>(c.seq->block_table.size())});
    if (c.sample) {
      b.logits_rows.push_back(b.num_rows() - 1);
      sample_chunk.push_back(ci);
    }
    (c.len == 1 && c.start > 0 && c.sample ? rep.decode_rows : rep.prefill_rows) += c.len;
  }
  rep.rows = b.num_rows();
  double t1 = now_seconds();
  model_.forward(b, cache_.view(), ex_, run_state_, &stats_);
  const std::vector<float>& logits = run_state_.logits;
  double t2 = now_seconds();
  const int V = static_cast<int>(model_.config().vocab_size);
  const int eos = static_cast<int>(model_.config().eos_token_id);
  for (size_t i = 0; i < sample_chunk.size(); ++i) {
    Sequence& s = *chunks[sample_chunk[i]].seq;
    const auto& p = s.req.sampling;
    const uint64_t seed =
        p.seed >= 0 ? static_cast<uint64_t>(p.seed) : static_cast<uint64_t>(s.req.id) * 7919u + 17u;
    SampleResult r = sample_token(&logits[i * V], V, p, seed, s.num_generated(), sampler_);
    s.tokens.push_back(r.token);
    RequestEvent& ev = next_event();
    ev.id = s.req.id;
    ev.new_tokens.push_back(r.token);
    ev.num_prompt = s.num_prompt;
    if (p.logprobs || p.top_logprobs > 0) ev.new_logprobs.push_back(std::move(r.logprobs));
    if (is_stop(s, r.token, eos))
      s.finish = FinishReason::Stop;
    else if (s.num_generated() >= p.max_tokens)
      s.finish = FinishReason::Length;
    if (s.finish != FinishReason::None) s.status = SeqStatus::Finished;
    ev.finish = s.finish;
  }
  rep.events.resize(num_events);
  sched_.postprocess(chunks);
  double t3 = now_seconds();
  rep.start_s = t0;
  rep.schedule_s = t1 - t0;
  rep.forward_s = t2 - t1;
  rep.sample_s = t3 - t2;
  rep.running = sched_.num_running();
  rep.waiting = sched_.num_waiting();
  rep.kv_total_pages = blocks_.num_pages();
  rep.kv_used_pages = blocks_.num_pages() - blocks_.num_free();
  rep.kv_cached_pages = blocks_.num_cached();
  rep.prefix_query_tokens = sched_.prefix_stats().query_tokens;
  rep.prefix_hit_tokens = sched_.prefix_stats().hit_tokens;
  blocks_.take_events(rep.cache_events);
}

}  // namespace dpep
