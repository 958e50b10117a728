// libFuzzer harness: an HTTP request body through parse_json_body and the three generation
// parsers (completions, chat, /generate) of launch/serve_api.h, with and without a tokenizer
// (the preset tokenizer and its DeepSeek chat template, as `dpep serve --tokenizer preset`).
// Allowed outcomes: an ApiRequest that satisfies the documented limits, or an ApiError with a
// 4xx/5xx status. Anything else (another exception, a crash, UB, a leak) is a finding.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "launch/serve/serve_api.h"
#include "runtime/tokenizer/preset_tokenizer.h"

namespace {

using namespace dpep;

struct Fixture {
  text::Tokenizer tokenizer;
  std::optional<text::ChatTemplate> chat;
  ServeLimits with_tok, no_tok;
  Fixture()
      : tokenizer(text::Tokenizer::from_json(text::build_preset_tokenizer_json(1024),
                                             text::build_preset_tokenizer_config_json())),
        chat(text::ChatTemplate::from_tokenizer(tokenizer)) {
    no_tok.vocab_size = 1024;
    no_tok.max_model_len = 4096;
    no_tok.kv_cache_tokens = 8192;
    no_tok.eos_token_id = 1;
    no_tok.served_model_name = "tiny";
    with_tok = no_tok;
    with_tok.tokenizer = &tokenizer;
    with_tok.chat_template = chat ? &*chat : nullptr;
    if (!with_tok.chat_template) std::abort();
  }
};

void check(const ApiRequest& a, const ServeLimits& lim) {
  const auto& s = a.request.sampling;
  if (a.request.prompt.empty() || s.max_tokens < 1) std::abort();
  for (int t : a.request.prompt)
    if (t < 0 || t >= lim.vocab_size) std::abort();
  if (static_cast<int64_t>(a.request.prompt.size()) + s.max_tokens > lim.max_model_len)
    std::abort();
  if (!(s.temperature >= 0) || !(s.top_p > 0 && s.top_p <= 1) || !(s.min_p >= 0 && s.min_p <= 1))
    std::abort();
  if (s.top_k < 0 || s.top_k > lim.vocab_size || s.top_logprobs < 0 || s.top_logprobs > 20)
    std::abort();
  if (lim.tokenizer) (void)lim.tokenizer->decode(a.request.prompt, a.skip_special_tokens);
}

template <class F>
void run(F parse, const nlohmann::json& j, const ServeLimits& lim) {
  try {
    check(parse(j, lim), lim);
  } catch (const ApiError& e) {
    if (e.status() < 400 || e.status() > 599) std::abort();
    (void)e.body();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fx;
  nlohmann::json j;
  try {
    j = parse_json_body(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const ApiError& e) {
    if (e.status() != 400) std::abort();
    return 0;
  }
  for (const ServeLimits* lim : {&fx.with_tok, &fx.no_tok}) {
    run(parse_completion_request, j, *lim);
    run(parse_chat_request, j, *lim);
    run(parse_generate_request, j, *lim);
  }
  return 0;
}
