#include "launch/request_json.h"

#include <fmt/format.h>

#include <climits>
#include <fstream>

#include "runtime/sampling_json.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace dpep {

Request request_from_json(const nlohmann::json& j, int64_t index, const RequestDefaults& d) {
  if (!j.is_object()) throw std::invalid_argument("a request must be a JSON object");
  Request r;
  r.id = index;
  r.sampling = d.sampling;
  try {
    if (j.contains("id"))
      r.external_id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
    else
      r.external_id = std::to_string(index);
    if (j.contains("input_ids")) {
      if (!j["input_ids"].is_array())
        throw std::invalid_argument("'input_ids' must be a list of token ids");
      r.prompt = j["input_ids"].get<std::vector<int>>();
    } else if (j.contains("prompt") || j.contains("messages")) {
      if (!d.tokenizer)
        throw std::invalid_argument("text prompts need a model file that carries a tokenizer");
      if (j.contains("prompt")) {
        if (!j["prompt"].is_string()) throw std::invalid_argument("'prompt' must be a string");
        r.prompt = d.tokenizer->encode(j["prompt"].get<std::string>(), true);
      } else {
        if (!d.chat)
          throw std::invalid_argument(
              "'messages' need a chat template in the model's tokenizer_config.json");
        r.prompt = text::encode_chat(*d.tokenizer, *d.chat, j["messages"],
                                     j.value("add_generation_prompt", true))
                       .ids;
      }
    } else {
      throw std::invalid_argument("a request needs 'input_ids', 'prompt' or 'messages'");
    }
    auto& s = r.sampling;
    read_sampling_fields(j, s, d.vocab_size);  // the same rules as the HTTP API
    const int64_t max_tokens = json_int_field(j, "max_tokens", s.max_tokens);
    if (max_tokens < 0 || max_tokens > INT32_MAX)
      throw RequestFieldError("max_tokens", "'max_tokens' must be >= 0");
    s.max_tokens = static_cast<int>(max_tokens);
    const int64_t top_logprobs = json_int_field(j, "top_logprobs", s.top_logprobs);
    if (top_logprobs < 0 || top_logprobs > 20)
      throw RequestFieldError("top_logprobs", "'top_logprobs' must be in [0, 20]");
    s.top_logprobs = static_cast<int>(top_logprobs);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("a field has the wrong type: {}", e.what()));
  }
  return r;
}

nlohmann::json result_to_json(const RequestResult& r, const text::Tokenizer* tokenizer) {
  nlohmann::json j;
  j["id"] = r.request.external_id;
  j["output_ids"] = r.output;
  if (tokenizer) j["text"] = tokenizer->decode(r.output, true);
  j["finish_reason"] = finish_reason_name(r.finish);
  if (r.request.sampling.top_logprobs > 0) {
    nlohmann::json tl = nlohmann::json::array();
    for (const auto& lp : r.logprobs) {
      nlohmann::json step = nlohmann::json::array();
      for (const auto& [id, v] : lp.top) step.push_back({id, v});
      tl.push_back(step);
    }
    j["top_logprobs"] = tl;
  }
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot open input file {}", path));
  std::vector<nlohmann::json> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("{} line {}: not valid JSON: {}", path, n, e.what()));
    }
  }
  return out;
}

std::vector<Request> read_requests(const std::string& path, const RequestDefaults& d) {
  const auto lines = read_jsonl(path);
  std::vector<Request> reqs;
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      reqs.push_back(request_from_json(lines[i], static_cast<int64_t>(i), d));
    } catch (const std::exception& e) {
      throw std::invalid_argument(fmt::format("{} request {}: {}", path, i + 1, e.what()));
    }
  }
  return reqs;
}

}  // namespace dpep
