// JSONL request lines of generate/offline --input-file, and their result lines.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/batch_source.h"
#include "runtime/request.h"

namespace dpep {

namespace text {
class Tokenizer;
class ChatTemplate;
}  // namespace text

// Defaults a line may override, and the text tools (null when the model has no tokenizer).
struct RequestDefaults {
  SamplingParams sampling;
  const text::Tokenizer* tokenizer = nullptr;
  const text::ChatTemplate* chat = nullptr;
  int vocab_size = 0;  // > 0: top_k and stop_token_ids are checked against it
};

// Reads one input line: {"id", "input_ids": [...] | "prompt": "text" | "messages": [...],
// "max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "ignore_eos", "stop_token_ids",
// "top_logprobs"}. Throws naming the field.
Request request_from_json(const nlohmann::json& j, int64_t index, const RequestDefaults& d);

// {"id", "output_ids", "finish_reason", "top_logprobs"?: [[[id, logprob], ...] per token],
//  "error"?}
// "text" (the decoded output) is added when a tokenizer is given.
nlohmann::json result_to_json(const RequestResult& r, const text::Tokenizer* tokenizer = nullptr);

// Every request of a JSONL file (ids 0..n-1 in line order); throws naming the file and the
// 1-based request on the first bad line, before anything runs.
std::vector<Request> read_requests(const std::string& path, const RequestDefaults& d);

// Reads a JSONL file; throws naming the file and the 1-based line on a malformed line.
std::vector<nlohmann::json> read_jsonl(const std::string& path);

}  // namespace dpep
