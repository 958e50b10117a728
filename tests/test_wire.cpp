// runtime/wire: every control-plane message survives encode -> decode unchanged, and damaged
// messages are refused instead of misread. No model, no MPI.
#include <gtest/gtest.h>

#include "runtime/wire.h"

using namespace dpep;

namespace {

Request sample_request(int64_t id) {
  Request r;
  r.id = id;
  r.external_id = "req-" + std::to_string(id) + "-\xc3\xa9";
  r.prompt = {0, 7, 65535, 129279};
  auto& s = r.sampling;
  s.temperature = 0.7f;
  s.top_k = 40;
  s.top_p = 0.95f;
  s.min_p = 0.05f;
  s.seed = (int64_t{1} << 40) + id;
  s.max_tokens = 1234;
  s.ignore_eos = true;
  s.stop_token_ids = {1, 2};
  s.top_logprobs = 5;
  s.logprobs = true;
  return r;
}

void expect_same(const Request& a, const Request& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.external_id, b.external_id);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.sampling.temperature, b.sampling.temperature);
  EXPECT_EQ(a.sampling.top_k, b.sampling.top_k);
  EXPECT_EQ(a.sampling.top_p, b.sampling.top_p);
  EXPECT_EQ(a.sampling.min_p, b.sampling.min_p);
  EXPECT_EQ(a.sampling.seed, b.sampling.seed);
  EXPECT_EQ(a.sampling.max_tokens, b.sampling.max_tokens);
  EXPECT_EQ(a.sampling.ignore_eos, b.sampling.ignore_eos);
  EXPECT_EQ(a.sampling.stop_token_ids, b.sampling.stop_token_ids);
  EXPECT_EQ(a.sampling.top_logprobs, b.sampling.top_logprobs);
  EXPECT_EQ(a.sampling.logprobs, b.sampling.logprobs);
}

}  // namespace

TEST(Wire, AssignmentRoundTrips) {
  wire::Assignment a;
  a.prefill_budget = 777;
  a.requests = {sample_request(3), sample_request(99)};
  a.requests[1].sampling.ignore_eos = false;
  a.aborts = {5, -1, int64_t{1} << 50};
  const auto b = wire::decode<wire::Assignment>(wire::encode(a));
  ASSERT_EQ(b.requests.size(), 2u);
  expect_same(a.requests[0], b.requests[0]);
  expect_same(a.requests[1], b.requests[1]);
  EXPECT_EQ(a.aborts, b.aborts);
  EXPECT_EQ(b.prefill_budget, 777);
}

TEST(Wire, StepStatusWithEventsAndLogprobsRoundTrips) {
  wire::StepStatus s;
  s.running = 3, s.waiting = 4, s.kv_used_pages = 17, s.kv_total_pages = 64, s.rows = 250;
  s.prefill_rows = 200, s.decode_rows = 50, s.forward_s = 0.125, s.kv_cached_pages = 9;
  s.prefix_query_tokens = 1000, s.prefix_hit_tokens = 640;
  s.cache_events = {{{1, 2}, true}, {{~0ull, 5}, false}};
  RequestEvent e;
  e.id = 42;
  e.new_tokens = {10, 11};
  e.new_logprobs = {{-0.5f, {{10, -0.5f}, {3, -1.25f}}}, {-2.0f, {}}};
  e.finish = FinishReason::Stop;
  e.error = "";
  e.num_prompt = 12;
  RequestEvent failed;
  failed.id = 43;
  failed.finish = FinishReason::Error;
  failed.error = "prompt too long";
  s.events = {e, failed};
  const auto t = wire::decode<wire::StepStatus>(wire::encode(s));
  EXPECT_EQ(t.running, 3);
  EXPECT_EQ(t.waiting, 4);
  EXPECT_EQ(t.kv_used_pages, 17);
  EXPECT_EQ(t.kv_total_pages, 64);
  EXPECT_EQ(t.rows, 250);
  EXPECT_EQ(t.forward_s, 0.125);
  EXPECT_EQ(t.prefill_rows, 200);
  EXPECT_EQ(t.decode_rows, 50);
  EXPECT_EQ(t.kv_cached_pages, 9);
  EXPECT_EQ(t.prefix_query_tokens, 1000);
  EXPECT_EQ(t.prefix_hit_tokens, 640);
  ASSERT_EQ(t.cache_events.size(), 2u);
  EXPECT_EQ(t.cache_events[1].hash.lo, ~0ull);
  EXPECT_EQ(t.cache_events[1].hash.hi, 5u);
  EXPECT_FALSE(t.cache_events[1].added);
  EXPECT_TRUE(t.cache_events[0].added);
  ASSERT_EQ(t.events.size(), 2u);
  EXPECT_EQ(t.events[0].id, 42);
  EXPECT_EQ(t.events[0].new_tokens, e.new_tokens);
  ASSERT_EQ(t.events[0].new_logprobs.size(), 2u);
  EXPECT_EQ(t.events[0].new_logprobs[0].logprob, -0.5f);
  EXPECT_EQ(t.events[0].new_logprobs[0].top, e.new_logprobs[0].top);
  EXPECT_TRUE(t.events[0].new_logprobs[1].top.empty());
  EXPECT_EQ(t.events[0].finish, FinishReason::Stop);
  EXPECT_EQ(t.events[0].num_prompt, 12);
  EXPECT_EQ(t.events[1].finish, FinishReason::Error);
  EXPECT_EQ(t.events[1].error, "prompt too long");
}

TEST(Wire, RankSummaryRoundTrips) {
  wire::RankSummary s{"host-a", 10, 2000, 1.5, 0.25, 3.0, 123456789};
  const auto t = wire::decode<wire::RankSummary>(wire::encode(s));
  EXPECT_EQ(t.host, "host-a");
  EXPECT_EQ(t.busy_steps, 10);
  EXPECT_EQ(t.rows, 2000);
  EXPECT_EQ(t.forward_s, 1.5);
  EXPECT_EQ(t.comm_s, 0.25);
  EXPECT_EQ(t.idle_s, 3.0);
  EXPECT_EQ(t.routed_pairs, 123456789);
}

// Every strict prefix of a message is refused (never read as a shorter valid message), and so
// is a message with bytes after its last field.
TEST(Wire, TruncatedOrOverlongMessagesAreRefused) {
  wire::Assignment a;
  a.requests = {sample_request(1)};
  a.aborts = {2};
  const auto bytes = wire::encode(a);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    EXPECT_THROW(wire::decode<wire::Assignment>(cut), std::runtime_error) << n;
  }
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(wire::decode<wire::Assignment>(longer), std::runtime_error);
  // A count larger than the message cannot make the reader allocate or read past the end.
  std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff};
  EXPECT_THROW(wire::decode<wire::Assignment>(huge), std::runtime_error);
}
