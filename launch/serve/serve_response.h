// JSON shapes of the generation responses: OpenAI completions and chat completions (whole and
// streamed chunks), SGLang /generate, usage and logprobs. No I/O, no state.
#pragma once
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "runtime/request.h"
#include "runtime/tokenizer/tokenizer.h"

namespace dpep {

struct ResponseMeta {
  std::string id;       // "cmpl-N" / "chatcmpl-N"
  int64_t created = 0;  // unix seconds
  std::string model;
};

// "length", "stop", "abort", "error"; null for None.
nlohmann::json finish_json(FinishReason r);
nlohmann::json usage_json(int prompt_tokens, int completion_tokens);

// Text of one token for logprobs: its decoded text, or "token_id:N" without a tokenizer.
std::string token_text(const text::Tokenizer* tok, int id);

// Completions logprobs: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
// text_offset starts at `offset` (characters of text already sent).
nlohmann::json completion_logprobs_json(const text::Tokenizer* tok, std::span<const int> ids,
                                        std::span<const TokenLogprobs> lps, int top_k,
                                        size_t offset);
// Chat logprobs: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
nlohmann::json chat_logprobs_json(const text::Tokenizer* tok, std::span<const int> ids,
                                  std::span<const TokenLogprobs> lps);

// One choice of a completion (whole or chunk). token_ids are a dpep extra (vLLM's
// return_token_ids shape) so clients without the tokenizer can read the output.
nlohmann::json completion_json(const ResponseMeta& m, const std::string& text,
                               std::span<const int> token_ids, const nlohmann::json& logprobs,
                               FinishReason finish);

// Chat: whole response (message) or chunk (delta).
nlohmann::json chat_json(const ResponseMeta& m, const std::string& content,
                         const std::string& reasoning, bool with_reasoning,
                         const nlohmann::json& logprobs, FinishReason finish);
nlohmann::json chat_chunk_json(const ResponseMeta& m, const nlohmann::json& delta,
                               const nlohmann::json& logprobs, FinishReason finish);

// SGLang /generate: {"text" (cumulative), "output_ids" (cumulative), "meta_info"}.
nlohmann::json generate_json(const std::string& id, const std::string& text,
                             std::span<const int> output_ids, int prompt_tokens,
                             FinishReason finish);

}  // namespace dpep
