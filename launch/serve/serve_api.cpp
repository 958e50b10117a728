#include "launch/serve/serve_api.h"

#include <fmt/format.h>

#include <cmath>

#include "runtime/sampling_json.h"

namespace dpep {

using nlohmann::json;

std::string ApiError::type() const {
  switch (status_) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 501:
      return "not_implemented_error";
    case 503:
      return "service_unavailable_error";
    default:
      return status_ >= 500 ? "internal_error" : "invalid_request_error";
  }
}

json ApiError::body() const {
  json e;
  e["message"] = what();
  e["type"] = type();
  e["param"] = param_.empty() ? json(nullptr) : json(param_);
  e["code"] = status_;
  return json{{"error", e}};
}

namespace {

// The value of a present, non-null field, else nullptr.
const json* field(const json& j, const std::string& name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

// The shared readers (runtime/sampling_json.h), with their errors as HTTP 400s.
template <typename F>
auto as_api_error(F&& f) {
  try {
    return f();
  } catch (const RequestFieldError& e) {
    throw bad_request(e.what(), e.field());
  }
}
double get_number(const json& j, const std::string& name, double def) {
  return as_api_error([&] { return json_number_field(j, name, def); });
}
int64_t get_int(const json& j, const std::string& name, int64_t def) {
  return as_api_error([&] { return json_int_field(j, name, def); });
}
bool get_bool(const json& j, const std::string& name, bool def) {
  return as_api_error([&] { return json_bool_field(j, name, def); });
}

std::vector<int> get_token_ids(const json& v, const std::string& name) {
  if (!v.is_array()) throw bad_request(fmt::format("'{}' must be a list of token ids", name), name);
  std::vector<int> ids;
  ids.reserve(v.size());
  for (const auto& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < INT32_MIN || x.get<int64_t>() > INT32_MAX)
      throw bad_request(fmt::format("'{}' must be a list of integer token ids", name), name);
    ids.push_back(x.get<int>());
  }
  return ids;
}

std::vector<std::string> get_stop_strings(const json& j) {
  const json* v = field(j, "stop");
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& s : *v) {
      if (!s.is_string()) throw bad_request("'stop' must be a string or a list of strings", "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw bad_request("'stop' must be a string or a list of strings", "stop");
  }
  std::erase(out, std::string());
  return out;
}

std::vector<int> encode_text(const std::string& text, const ServeLimits& lim, bool add_special,
                             const std::string& param) {
  if (!lim.tokenizer)
    throw bad_request(
        "text prompts need a tokenizer: this model file has none (send token ids, or start "
        "dpep serve with --tokenizer)",
        param);
  return lim.tokenizer->encode(text, add_special);
}

void check_model(const json& j, const ServeLimits& lim, ApiRequest& a) {
  a.model = lim.served_model_name;
  const json* m = field(j, "model");
  if (!m) return;
  if (!m->is_string()) throw bad_request("'model' must be a string", "model");
  if (m->get<std::string>() != lim.served_model_name && !m->get<std::string>().empty())
    throw ApiError(404,
                   fmt::format("The model '{}' does not exist (this server serves '{}')",
                               m->get<std::string>(), lim.served_model_name),
                   "model");
}

// The sampling fields every endpoint shares (OpenAI names; /generate's sampling_params too).
void read_sampling(const json& j, ApiRequest& a, const ServeLimits& lim) {
  SamplingParams& s = a.request.sampling;
  s.temperature = 1.0f;  // OpenAI's default; the JSONL files default to the command line's
  as_api_error([&] {
    read_sampling_fields(j, s, lim.vocab_size);
    return 0;
  });
  a.stop = get_stop_strings(j);
  if (!a.stop.empty() && !lim.tokenizer)
    throw bad_request(
        "'stop' strings need a tokenizer: this model file has none (use stop_token_ids)", "stop");
  for (const char* name : {"repetition_penalty"})
    if (get_number(j, name, 1.0) != 1.0)
      throw bad_request(fmt::format("'{}' is not supported", name), name);
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (get_number(j, name, 0.0) != 0.0)
      throw bad_request(fmt::format("'{}' is not supported", name), name);
  if (get_int(j, "n", 1) != 1) throw bad_request("only n = 1 is supported", "n");
  if (get_int(j, "best_of", 1) != 1) throw bad_request("only best_of = 1 is supported", "best_of");
  a.skip_special_tokens = get_bool(j, "skip_special_tokens", true);
}

// Parameters of the OpenAI / vLLM / SGLang APIs that dpep does not implement. Each is accepted
// only at its neutral value (the one that means "not used"); anything else is a 400 naming it,
// never silently ignored. docs/serving.md lists them.
struct Unsupported {
  const char* name;
  const char* neutral;  // for the message
  bool (*is_neutral)(const json&);
};
bool empty_array(const json& v) {
  return v.is_array() && v.empty();
}
bool empty_object(const json& v) {
  return v.is_object() && v.empty();
}
bool is_false(const json& v) {
  return v.is_boolean() && !v.get<bool>();
}
bool is_bool(const json& v) {
  return v.is_boolean();
}
bool is_zero(const json& v) {
  return v.is_number() && v.get<double>() == 0;
}
bool is_empty_string(const json& v) {
  return v.is_string() && v.get<std::string>().empty();
}
bool never(const json&) {
  return false;
}
// tool_choice / function_call: "none", or "auto" (with no tools, nothing to choose from).
bool no_tool_choice(const json& v) {
  if (v.is_string()) return v == "none" || v == "auto";
  return v.is_object() && v.contains("type") && v["type"] == "none";
}
bool text_format(const json& v) {
  return v.is_object() && v.contains("type") && v["type"] == "text";
}
bool text_modality(const json& v) {
  return v == json::array({"text"});
}

// Both OpenAI endpoints (vLLM's extras included).
constexpr Unsupported kOpenAiUnsupported[] = {
    {"logit_bias", "{}", empty_object},
    {"response_format", "{\"type\": \"text\"}", text_format},
    {"min_tokens", "0", is_zero},
    {"use_beam_search", "false", is_false},
    {"include_stop_str_in_output", "false", is_false},
    {"prompt_logprobs", "null", never},
    {"truncate_prompt_tokens", "null", never},
    {"guided_json", "null", never},
    {"guided_regex", "null", never},
    {"guided_choice", "null", never},
    {"guided_grammar", "null", never},
    {"structured_outputs", "null", never},
};
constexpr Unsupported kCompletionUnsupported[] = {
    {"suffix", "\"\"", is_empty_string},
};
constexpr Unsupported kChatUnsupported[] = {
    {"tools", "[]", empty_array},
    {"tool_choice", "\"none\"", no_tool_choice},
    {"parallel_tool_calls", "true or false (there are no tools)", is_bool},
    {"functions", "[]", empty_array},
    {"function_call", "\"none\"", no_tool_choice},
    {"audio", "null", never},
    {"modalities", "[\"text\"]", text_modality},
    {"prediction", "null", never},
    {"web_search_options", "null", never},
    {"reasoning_effort", "null", never},
    {"chat_template", "null (the model's template is used)", never},
    {"documents", "[]", empty_array},
    {"continue_final_message", "false", is_false},
};
// SGLang /generate: top level and sampling_params.
constexpr Unsupported kGenerateUnsupported[] = {
    {"image_data", "null", never},
    {"return_logprob", "false", is_false},
    {"top_logprobs_num", "0", is_zero},
    {"lora_path", "null", never},
    {"return_hidden_states", "false", is_false},
};
constexpr Unsupported kSglangSamplingUnsupported[] = {
    {"regex", "null", never},
    {"json_schema", "null", never},
    {"ebnf", "null", never},
    {"min_new_tokens", "0", is_zero},
    {"no_stop_trim", "false", is_false},
    {"logit_bias", "{}", empty_object},
};

template <size_t N>
void refuse_unsupported(const json& j, const Unsupported (&table)[N]) {
  for (const auto& u : table)
    if (const json* v = field(j, u.name); v && !u.is_neutral(*v))
      throw bad_request(fmt::format("'{}' is not supported by dpep: leave it out or send {} "
                                    "(got {})",
                                    u.name, u.neutral, v->dump().substr(0, 100)),
                        u.name);
}

// chat_template_kwargs: the DeepSeek V3/R1 templates read none. The thinking switch other
// templates take (V3.1's `thinking`, Qwen's `enable_thinking`) is honoured when it asks for
// what this template does anyway (R1 always opens "<think>", V3 never), refused otherwise.
void check_chat_template_kwargs(const json& j, const ServeLimits& lim) {
  const json* kw = field(j, "chat_template_kwargs");
  if (!kw) return;
  if (!kw->is_object())
    throw bad_request("'chat_template_kwargs' must be an object", "chat_template_kwargs");
  const bool thinks =
      lim.chat_template && lim.chat_template->options().generation_suffix.rfind("<think>", 0) == 0;
  for (const auto& [key, v] : kw->items()) {
    const std::string param = "chat_template_kwargs." + key;
    if (key == "thinking" || key == "enable_thinking") {
      if (!v.is_boolean())
        throw bad_request(fmt::format("'{}' must be true or false", param), param);
      if (v.get<bool>() != thinks)
        throw bad_request(
            fmt::format("'{}': {} is not supported: this model's chat template {} a <think> "
                        "block",
                        param, v.get<bool>() ? "true" : "false",
                        thinks ? "always opens" : "never opens"),
            param);
      continue;
    }
    throw bad_request(
        fmt::format("'{}' is not supported: the DeepSeek chat template takes no such argument "
                    "(supported: thinking / enable_thinking, at the template's own mode)",
                    param),
        param);
  }
}

void read_stream(const json& j, ApiRequest& a) {
  a.stream = get_bool(j, "stream", false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) throw bad_request("'stream_options' must be an object", "stream_options");
    a.include_usage = get_bool(*so, "include_usage", false);
  }
}

int max_tokens_field(const json& j, const std::string& name, int def) {
  const int64_t m = get_int(j, name, def);
  if (m < 1) throw bad_request(fmt::format("'{}' must be at least 1, got {}", name, m), name);
  return static_cast<int>(std::min<int64_t>(m, INT32_MAX));
}

}  // namespace

json parse_json_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw bad_request(fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw bad_request("the body must be a JSON object");
  return j;
}

void check_prompt(const std::vector<int>& prompt, int max_tokens, const ServeLimits& lim,
                  const std::string& param) {
  if (prompt.empty()) throw bad_request("the prompt is empty", param);
  for (int t : prompt)
    if (t < 0 || t >= lim.vocab_size)
      throw bad_request(
          fmt::format("token id {} is outside the vocabulary [0, {})", t, lim.vocab_size), param);
  const int64_t need = static_cast<int64_t>(prompt.size()) + max_tokens;
  if (lim.max_model_len > 0 && need > lim.max_model_len)
    throw bad_request(
        fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                    "tokens ({} in the prompt, {} for the completion)",
                    lim.max_model_len, need, prompt.size(), max_tokens),
        param);
  if (lim.kv_cache_tokens > 0 && need > lim.kv_cache_tokens)
    throw bad_request(
        fmt::format(
            "the prompt ({} tokens) plus max_tokens ({}) can never fit in a rank's KV cache "
            "of {} tokens",
            prompt.size(), max_tokens, lim.kv_cache_tokens),
        param);
}

ApiRequest parse_completion_request(const json& j, const ServeLimits& lim) {
  ApiRequest a;
  a.kind = ApiKind::Completion;
  check_model(j, lim, a);
  const json* p = field(j, "prompt");
  if (!p) throw bad_request("'prompt' is required", "prompt");
  // A batch of one prompt is accepted; larger batches are not.
  if (p->is_array() && !p->empty() && ((*p)[0].is_array() || (*p)[0].is_string())) {
    if (p->size() != 1)
      throw bad_request(
          fmt::format("batched prompts ({} prompts) are not supported: send one request per prompt",
                      p->size()),
          "prompt");
    p = &(*p)[0];
  }
  if (p->is_string())
    a.request.prompt = encode_text(p->get<std::string>(), lim, true, "prompt");
  else
    a.request.prompt = get_token_ids(*p, "prompt");
  read_sampling(j, a, lim);
  read_stream(j, a);
  SamplingParams& s = a.request.sampling;
  s.max_tokens = max_tokens_field(j, "max_tokens", 16);
  a.echo = get_bool(j, "echo", false);
  if (const json* lp = field(j, "logprobs")) {
    if (lp->is_boolean())
      throw bad_request("'logprobs' must be an integer (top logprobs per token)", "logprobs");
    const int64_t k = get_int(j, "logprobs", 0);
    if (k < 0 || k > 20) throw bad_request("'logprobs' must be in [0, 20]", "logprobs");
    a.completion_logprobs = static_cast<int>(k);
    s.logprobs = true;
    s.top_logprobs = static_cast<int>(k);
  }
  if (a.echo && a.completion_logprobs >= 0)
    throw bad_request("'echo' together with 'logprobs' is not supported", "echo");
  refuse_unsupported(j, kOpenAiUnsupported);
  refuse_unsupported(j, kCompletionUnsupported);
  check_prompt(a.request.prompt, s.max_tokens, lim, "prompt");
  return a;
}

ApiRequest parse_chat_request(const json& j, const ServeLimits& lim) {
  if (!lim.tokenizer || !lim.chat_template)
    throw ApiError(501,
                   lim.tokenizer
                       ? "chat completions need a chat template: this model's tokenizer has none"
                       : "chat completions need a tokenizer: this model file has none (start dpep "
                         "serve with --tokenizer)");
  ApiRequest a;
  a.kind = ApiKind::Chat;
  check_model(j, lim, a);
  refuse_unsupported(j, kOpenAiUnsupported);
  refuse_unsupported(j, kChatUnsupported);
  check_chat_template_kwargs(j, lim);
  const json* m = field(j, "messages");
  if (!m || !m->is_array() || m->empty())
    throw bad_request("'messages' must be a non-empty list of {role, content}", "messages");
  const bool add_generation_prompt = get_bool(j, "add_generation_prompt", true);
  try {
    a.request.prompt =
        text::encode_chat(*lim.tokenizer, *lim.chat_template, *m, add_generation_prompt).ids;
  } catch (const std::exception& e) {
    throw bad_request(e.what(), "messages");
  }
  read_sampling(j, a, lim);
  read_stream(j, a);
  SamplingParams& s = a.request.sampling;
  const int room = std::max(1, lim.max_model_len - static_cast<int>(a.request.prompt.size()));
  s.max_tokens = field(j, "max_completion_tokens")
                     ? max_tokens_field(j, "max_completion_tokens", room)
                     : max_tokens_field(j, "max_tokens", room);
  a.chat_logprobs = get_bool(j, "logprobs", false);
  const int64_t k = get_int(j, "top_logprobs", 0);
  if (k < 0 || k > 20) throw bad_request("'top_logprobs' must be in [0, 20]", "top_logprobs");
  if (k > 0 && !a.chat_logprobs)
    throw bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  s.logprobs = a.chat_logprobs;
  s.top_logprobs = static_cast<int>(k);
  check_prompt(a.request.prompt, s.max_tokens, lim, "messages");
  return a;
}

ApiRequest parse_generate_request(const json& j, const ServeLimits& lim) {
  ApiRequest a;
  a.kind = ApiKind::Generate;
  a.model = lim.served_model_name;
  if (const json* ids = field(j, "input_ids")) {
    a.request.prompt = get_token_ids(*ids, "input_ids");
  } else if (const json* t = field(j, "text")) {
    if (!t->is_string()) throw bad_request("'text' must be a string", "text");
    a.request.prompt = encode_text(t->get<std::string>(), lim, true, "text");
  } else {
    throw bad_request("'input_ids' or 'text' is required", "input_ids");
  }
  static const json kEmpty = json::object();
  const json* sp = field(j, "sampling_params");
  if (sp && !sp->is_object())
    throw bad_request("'sampling_params' must be an object", "sampling_params");
  const json& s_json = sp ? *sp : kEmpty;
  refuse_unsupported(j, kGenerateUnsupported);
  refuse_unsupported(s_json, kSglangSamplingUnsupported);
  read_sampling(s_json, a, lim);
  a.request.sampling.max_tokens = max_tokens_field(s_json, "max_new_tokens", 128);
  a.stream = get_bool(j, "stream", false);
  check_prompt(a.request.prompt, a.request.sampling.max_tokens, lim, "input_ids");
  return a;
}

}  // namespace dpep
