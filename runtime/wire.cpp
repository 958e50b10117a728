#include "runtime/wire.h"

namespace dpep::wire {

void put_request(Writer& w, const Request& r) {
  w.put(r.id);
  w.put_str(r.external_id);
  w.put_vec(r.prompt);
  const auto& s = r.sampling;
  w.put(s.temperature);
  w.put(s.top_k);
  w.put(s.top_p);
  w.put(s.min_p);
  w.put(s.seed);
  w.put(s.max_tokens);
  w.put<uint8_t>(s.ignore_eos);
  w.put_vec(s.stop_token_ids);
  w.put(s.top_logprobs);
  w.put<uint8_t>(s.logprobs);
}

Request get_request(Reader& rd) {
  Request r;
  r.id = rd.get<int64_t>();
  r.external_id = rd.get_str();
  r.prompt = rd.get_vec<int>();
  auto& s = r.sampling;
  s.temperature = rd.get<float>();
  s.top_k = rd.get<int>();
  s.top_p = rd.get<float>();
  s.min_p = rd.get<float>();
  s.seed = rd.get<int64_t>();
  s.max_tokens = rd.get<int>();
  s.ignore_eos = rd.get<uint8_t>();
  s.stop_token_ids = rd.get_vec<int>();
  s.top_logprobs = rd.get<int>();
  s.logprobs = rd.get<uint8_t>();
  return r;
}

void put_event(Writer& w, const RequestEvent& e) {
  w.put(e.id);
  w.put_vec(e.new_tokens);
  w.put<uint32_t>(static_cast<uint32_t>(e.new_logprobs.size()));
  for (const auto& lp : e.new_logprobs) {
    w.put(lp.logprob);
    w.put<uint32_t>(static_cast<uint32_t>(lp.top.size()));
    for (const auto& [id, v] : lp.top) {
      w.put<int32_t>(id);
      w.put<float>(v);
    }
  }
  w.put<int32_t>(static_cast<int32_t>(e.finish));
  w.put_str(e.error);
  w.put(e.num_prompt);
}

RequestEvent get_event(Reader& rd) {
  RequestEvent e;
  e.id = rd.get<int64_t>();
  e.new_tokens = rd.get_vec<int>();
  const uint32_t n = rd.get<uint32_t>();
  for (uint32_t i = 0; i < n; ++i) {
    TokenLogprobs lp;
    lp.logprob = rd.get<float>();
    const uint32_t k = rd.get<uint32_t>();
    for (uint32_t j = 0; j < k; ++j) {
      const int id = rd.get<int32_t>();
      lp.top.emplace_back(id, rd.get<float>());
    }
    e.new_logprobs.push_back(std::move(lp));
  }
  e.finish = static_cast<FinishReason>(rd.get<int32_t>());
  e.error = rd.get_str();
  e.num_prompt = rd.get<int>();
  return e;
}

void put_cache_events(Writer& w, const std::vector<CacheEvent>& events) {
  w.put<uint32_t>(static_cast<uint32_t>(events.size()));
  for (const auto& e : events) {
    w.put<uint64_t>(e.hash.lo);
    w.put<uint64_t>(e.hash.hi);
    w.put<uint8_t>(e.added ? 1 : 0);
  }
}

std::vector<CacheEvent> get_cache_events(Reader& r) {
  const uint32_t n = r.get<uint32_t>();
  if (r.remaining() / 17 < n) throw std::runtime_error("control message truncated");
  std::vector<CacheEvent> events(n);
  for (auto& e : events) {
    e.hash.lo = r.get<uint64_t>();
    e.hash.hi = r.get<uint64_t>();
    e.added = r.get<uint8_t>() != 0;
  }
  return events;
}

}  // namespace dpep::wire
