// The control-plane messages of the DP loop as little-endian byte blobs. Each message is a
// struct whose fields are listed ONCE, in a `fields(msg, f)` function that both encode() and
// decode() walk, so the two directions cannot drift apart (tests/test_wire.cpp round-trips
// every message).
//
//   rank 0 -> rank k, each step:  Assignment   (new requests, aborts)
//   rank k -> rank 0, each step:  StepStatus   (load, KV use, the step's request events)
//   rank k -> rank 0, at the end: RankSummary  (totals for the summary lines)
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/request.h"
#include "runtime/request_source.h"

namespace dpep::wire {

// ---- the field lists (M is the message type, const or not; f is called on every field) ----

template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, SamplingParams>
void fields(M& s, F&& f) {
  f(s.temperature), f(s.top_k), f(s.top_p), f(s.min_p), f(s.seed), f(s.max_tokens);
  f(s.ignore_eos), f(s.stop_token_ids), f(s.top_logprobs), f(s.logprobs);
}

template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, Request>
void fields(M& r, F&& f) {
  f(r.id), f(r.external_id), f(r.prompt), f(r.sampling);
}

template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, TokenLogprobs>
void fields(M& lp, F&& f) {
  f(lp.logprob), f(lp.top);
}

template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, RequestEvent>
void fields(M& e, F&& f) {
  f(e.id), f(e.new_tokens), f(e.new_logprobs), f(e.finish), f(e.error), f(e.num_prompt);
}

template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, CacheEvent>
void fields(M& e, F&& f) {
  f(e.hash.lo), f(e.hash.hi), f(e.added);
}

// Rank 0 -> rank k at the start of a step.
struct Assignment {
  int32_t prefill_budget = 0;  // prefill tokens this step may take (0: --max-prefill-tokens)
  std::vector<Request> requests;
  std::vector<int64_t> aborts;  // request ids to cancel
};
template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, Assignment>
void fields(M& a, F&& f) {
  f(a.prefill_budget), f(a.requests), f(a.aborts);
}

// Rank k -> rank 0 at the end of a step.
struct StepStatus {
  int32_t running = 0, waiting = 0, kv_used_pages = 0, kv_total_pages = 0, rows = 0;
  int32_t prefill_rows = 0, decode_rows = 0;
  double forward_s = 0;
  int32_t kv_cached_pages = 0;                             // prefix cache: pages held for reuse
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;  // totals so far
  std::vector<CacheEvent> cache_events;  // pages cached / evicted this step (cache-aware routing)
  std::vector<RequestEvent> events;
};
template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, StepStatus>
void fields(M& s, F&& f) {
  f(s.running), f(s.waiting), f(s.kv_used_pages), f(s.kv_total_pages), f(s.rows);
  f(s.prefill_rows), f(s.decode_rows), f(s.forward_s), f(s.kv_cached_pages);
  f(s.prefix_query_tokens), f(s.prefix_hit_tokens), f(s.cache_events), f(s.events);
}

// Rank k -> rank 0 once, after the loop.
struct RankSummary {
  std::string host;
  int64_t busy_steps = 0, rows = 0;
  double forward_s = 0, comm_s = 0, idle_s = 0;
  int64_t routed_pairs = 0;
};
template <typename M, typename F>
requires std::is_same_v<std::remove_const_t<M>, RankSummary>
void fields(M& s, F&& f) {
  f(s.host), f(s.busy_steps), f(s.rows), f(s.forward_s), f(s.comm_s), f(s.idle_s);
  f(s.routed_pairs);
}

// Appends fields: trivially copyable values as their bytes, strings and vectors as a uint32
// count followed by their elements, bools as one byte.
class Writer {
 public:
  template <typename T>
  void field(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      field(static_cast<uint8_t>(v));
    } else if constexpr (std::is_same_v<T, std::string>) {
      count(v.size());
      buf_.insert(buf_.end(), v.begin(), v.end());
    } else if constexpr (requires {
                           v.begin();
                           v.size();
                         }) {
      count(v.size());
      for (const auto& x : v) field(x);
    } else if constexpr (requires {
                           v.first;
                           v.second;
                         }) {
      field(v.first);
      field(v.second);
    } else if constexpr (requires { fields(v, [](const auto&) {}); }) {
      fields(v, [this](const auto& x) { field(x); });
    } else {
      static_assert(std::is_trivially_copyable_v<T>);
      const auto* p = reinterpret_cast<const uint8_t*>(&v);
      buf_.insert(buf_.end(), p, p + sizeof(T));
    }
  }
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  void count(size_t n) {
    if (n > UINT32_MAX) throw std::length_error("control message field too long");
    field(static_cast<uint32_t>(n));
  }
  std::vector<uint8_t> buf_;
};

// Reads fields back in the order they were written; throws std::runtime_error when the
// message is shorter than its fields say.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  explicit Reader(const std::vector<uint8_t>& b) : Reader(b.data(), b.size()) {}
  template <typename T>
  void field(T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      uint8_t b = 0;
      field(b);
      v = b != 0;
    } else if constexpr (std::is_same_v<T, std::string>) {
      const uint32_t n = count(1);
      v.assign(reinterpret_cast<const char*>(p_), n);
      p_ += n;
    } else if constexpr (requires {
                           v.begin();
                           v.resize(0);
                         }) {
      const uint32_t n = count(1);  // every element takes at least one byte
      v.resize(n);
      for (auto& x : v) field(x);
    } else if constexpr (requires {
                           v.first;
                           v.second;
                         }) {
      field(v.first);
      field(v.second);
    } else if constexpr (requires { fields(v, [](auto&) {}); }) {
      fields(v, [this](auto& x) { field(x); });
    } else {
      static_assert(std::is_trivially_copyable_v<T>);
      need(sizeof(T));
      std::memcpy(&v, p_, sizeof(T));
      p_ += sizeof(T);
    }
  }
  bool done() const { return p_ == end_; }

 private:
  uint32_t count(size_t min_element_bytes) {
    uint32_t n = 0;
    field(n);
    need(static_cast<size_t>(n) * min_element_bytes);
    return n;
  }
  void need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) throw std::runtime_error("control message truncated");
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

template <typename M>
std::vector<uint8_t> encode(const M& msg) {
  Writer w;
  w.field(msg);
  return std::move(w.bytes());
}

// Throws std::runtime_error on a truncated message or trailing bytes.
template <typename M>
M decode(const std::vector<uint8_t>& bytes) {
  Reader r(bytes);
  M msg;
  r.field(msg);
  if (!r.done()) throw std::runtime_error("control message has trailing bytes");
  return msg;
}

}  // namespace dpep::wire
