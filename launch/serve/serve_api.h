// Parsing and validation of the generation endpoints' JSON bodies (OpenAI /v1/completions and
// /v1/chat/completions, SGLang /generate) into one ApiRequest. Every check that can be made
// before the engine sees the request is made here and throws ApiError (400, or 404 for an
// unknown model, 501 for what needs a missing tokenizer). Parameters of the OpenAI/vLLM/SGLang
// APIs that dpep does not implement are accepted only at their neutral value (`tools: []`,
// `response_format: {"type": "text"}`, ...), else 400 naming them; fields no API defines are
// ignored (docs/serving.md lists both).
// Thread safety: pure functions; the tokenizer and template are only read.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "launch/serve/serve_errors.h"
#include "runtime/request.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace dpep {

enum class ApiKind { Completion, Chat, Generate };

// What the parser checks against; pointers may be null (no tokenizer / no chat template).
struct ServeLimits {
  int vocab_size = 0;
  int max_model_len = 0;          // prompt + max_tokens must fit
  long long kv_cache_tokens = 0;  // ... and fit in one rank's KV cache (0: unknown)
  int eos_token_id = -1;
  std::string served_model_name;
  const text::Tokenizer* tokenizer = nullptr;
  const text::ChatTemplate* chat_template = nullptr;
};

struct ApiRequest {
  ApiKind kind = ApiKind::Completion;
  Request request;  // prompt + sampling; the id is assigned by the source
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool echo = false;              // completions: prompt text before the output
  int completion_logprobs = -1;   // completions: logprobs=K (>= 0), -1 = none
  bool chat_logprobs = false;     // chat: logprobs=true (top_logprobs in sampling)
  std::vector<std::string> stop;  // stop strings (need the tokenizer)
  bool skip_special_tokens = true;
  std::string model;  // as the response names it
};

// Throws ApiError(400) with the parser's message.
nlohmann::json parse_json_body(const std::string& body);

ApiRequest parse_completion_request(const nlohmann::json& j, const ServeLimits& lim);
ApiRequest parse_chat_request(const nlohmann::json& j, const ServeLimits& lim);
ApiRequest parse_generate_request(const nlohmann::json& j, const ServeLimits& lim);

// Checks a prompt (ids in the vocabulary, non-empty) and prompt + max_tokens against the
// context; `param` names the field in the error.
void check_prompt(const std::vector<int>& prompt, int max_tokens, const ServeLimits& lim,
                  const std::string& param);

}  // namespace dpep
