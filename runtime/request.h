// A generation request and the per-sequence state the engine keeps for it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/prefix_hash.h"

namespace dpep {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;
  float min_p = 0.0f;
  int64_t seed = -1;  // -1 = none given (the engine derives one from the request id)
  int max_tokens = 16;
  bool ignore_eos = false;
  std::vector<int> stop_token_ids;
  int top_logprobs = 0;   // K best (id, logprob) per generated token; 0 = none
  bool logprobs = false;  // logprob of each sampled token
};

struct Request {
  int64_t id = 0;
  std::string external_id;  // the caller's id, echoed back
  std::vector<int> prompt;
  SamplingParams sampling;
};

enum class FinishReason { None, Length, Stop, Abort, Error };
const char* finish_reason_name(FinishReason r);  // "length", "stop", "abort", "error"

struct TokenLogprobs {
  float logprob = 0;                       // of the sampled token
  std::vector<std::pair<int, float>> top;  // K best, descending
};

enum class SeqStatus { Waiting, Running, Finished };

struct Sequence {
  Request req;
  std::vector<int> tokens;  // prompt + generated
  int num_prompt = 0;
  int num_computed = 0;          // tokens whose latents are in the cache
  std::vector<int> block_table;  // cache pages, in position order
  SeqStatus status = SeqStatus::Waiting;
  FinishReason finish = FinishReason::None;
  std::string error;
  std::vector<TokenLogprobs> logprobs;
  int num_preemptions = 0;
  // Prefix cache: keys of the full pages of `tokens` (computed as needed), how many leading
  // pages are committed, and the page standing for the last committed one (the next's parent).
  std::vector<PageHash> page_hashes;
  int num_committed_pages = 0;
  int last_committed_page = -1;
  uint32_t last_committed_gen = 0;
  int num_cached_tokens = 0;  // prompt tokens found in the cache at the last admission
  int num_generated() const { return static_cast<int>(tokens.size()) - num_prompt; }
};

}  // namespace dpep
