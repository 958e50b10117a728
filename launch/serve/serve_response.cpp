#include "launch/serve/serve_response.h"

#include <fmt/format.h>

namespace dpep {

using nlohmann::json;

json finish_json(FinishReason r) {
  if (r == FinishReason::None) return nullptr;
  return finish_reason_name(r);
}

json usage_json(int prompt_tokens, int completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string token_text(const text::Tokenizer* tok, int id) {
  if (!tok) return fmt::format("token_id:{}", id);
  const int ids[1] = {id};
  return tok->decode(ids, false);
}

json completion_logprobs_json(const text::Tokenizer* tok, std::span<const int> ids,
                              std::span<const TokenLogprobs> lps, int top_k, size_t offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(),
       offsets = json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string t = token_text(tok, ids[i]);
    tokens.push_back(t);
    offsets.push_back(offset);
    offset += t.size();
    if (i >= lps.size()) {
      token_lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    token_lps.push_back(lps[i].logprob);
    json top = json::object();
    for (size_t k = 0; k < lps[i].top.size() && static_cast<int>(k) < top_k; ++k)
      top[token_text(tok, lps[i].top[k].first)] = lps[i].top[k].second;
    tops.push_back(top_k > 0 ? top : json(nullptr));
  }
  return json{{"tokens", tokens},
              {"token_logprobs", token_lps},
              {"top_logprobs", tops},
              {"text_offset", offsets}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

json chat_logprobs_json(const text::Tokenizer* tok, std::span<const int> ids,
                        std::span<const TokenLogprobs> lps) {
  json content = json::array();
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i) {
    const std::string t = token_text(tok, ids[i]);
    json top = json::array();
    for (const auto& [id, lp] : lps[i].top) {
      const std::string s = token_text(tok, id);
      top.push_back(json{{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
    }
    content.push_back(json{
        {"token", t}, {"logprob", lps[i].logprob}, {"bytes", bytes_of(t)}, {"top_logprobs", top}});
  }
  return json{{"content", content}};
}

json completion_json(const ResponseMeta& m, const std::string& text, std::span<const int> token_ids,
                     const json& logprobs, FinishReason finish) {
  json choice{{"index", 0},
              {"text", text},
              {"logprobs", logprobs},
              {"finish_reason", finish_json(finish)},
              {"token_ids", std::vector<int>(token_ids.begin(), token_ids.end())}};
  return json{{"id", m.id},
              {"object", "text_completion"},
              {"created", m.created},
              {"model", m.model},
              {"choices", json::array({choice})}};
}

json chat_json(const ResponseMeta& m, const std::string& content, const std::string& reasoning,
               bool with_reasoning, const json& logprobs, FinishReason finish) {
  json msg{{"role", "assistant"}, {"content", content}};
  if (with_reasoning) msg["reasoning_content"] = reasoning;
  json choice{{"index", 0},
              {"message", msg},
              {"logprobs", logprobs},
              {"finish_reason", finish_json(finish)}};
  return json{{"id", m.id},
              {"object", "chat.completion"},
              {"created", m.created},
              {"model", m.model},
              {"choices", json::array({choice})}};
}

json chat_chunk_json(const ResponseMeta& m, const json& delta, const json& logprobs,
                     FinishReason finish) {
  json choice{{"index", 0},
              {"delta", delta},
              {"logprobs", logprobs},
              {"finish_reason", finish_json(finish)}};
  return json{{"id", m.id},
              {"object", "chat.completion.chunk"},
              {"created", m.created},
              {"model", m.model},
              {"choices", json::array({choice})}};
}

json generate_json(const std::string& id, const std::string& text, std::span<const int> output_ids,
                   int prompt_tokens, FinishReason finish) {
  json fr = nullptr;
  if (finish != FinishReason::None) fr = json{{"type", finish_reason_name(finish)}};
  json meta{{"id", id},
            {"prompt_tokens", prompt_tokens},
            {"completion_tokens", output_ids.size()},
            {"finish_reason", fr}};
  return json{{"text", text},
              {"output_ids", std::vector<int>(output_ids.begin(), output_ids.end())},
              {"meta_info", meta}};
}

}  // namespace dpep
