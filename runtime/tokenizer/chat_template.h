// The chat template of DeepSeek-V3 and R1, written out in C++ (no Jinja engine). It renders
// what the Jinja `chat_template` of their tokenizer_config.json renders, quirks included:
//   BOS, then the system prompt(s), then per message
//     user       "<｜User｜>" + content
//     assistant  "<｜Assistant｜>" + content + "<｜end▁of▁sentence｜>"
//                (right after tool outputs: "<｜tool▁outputs▁end｜>" + content + EOS)
//     assistant with tool_calls and null content: the tool-call block (see chat_template.cpp)
//     tool       "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + content +
//     "<｜tool▁output▁end｜>"
//                (later ones: "\n<｜tool▁output▁begin｜>..." )
//   then "<｜tool▁outputs▁end｜>" if the last message was a tool output, else the generation
//   prompt "<｜Assistant｜>" (+ "<think>\n" for R1) when asked. Other roles render nothing.
// The family members differ in three places, captured by ChatTemplateOptions and detected
// from the template text by detect_chat_template().
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dpep::text {

struct ToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, inserted verbatim
};

struct ChatMessage {
  std::string role;                    // system | user | assistant | tool (others: ignored)
  std::optional<std::string> content;  // null: an assistant turn that only calls tools
  std::vector<ToolCall> tool_calls;
};

struct ChatTemplateOptions {
  // V3: every system message, joined by "\n\n". R1 (2025-01 release): the last one only.
  bool join_system_prompts = true;
  // R1: an earlier assistant turn keeps only what follows its last "</think>".
  bool drop_reasoning = false;
  // Text after "<｜Assistant｜>" in the generation prompt. R1: "<think>\n".
  std::string generation_suffix;
};

enum class ChatTemplateKind { kDeepSeekV3, kDeepSeekR1 };
ChatTemplateOptions chat_template_options(ChatTemplateKind kind);

// Options of a DeepSeek V3/R1-style Jinja template text; nullopt when the text is not one
// (no <｜User｜>/<｜Assistant｜> markers).
std::optional<ChatTemplateOptions> detect_chat_template(std::string_view jinja);

// OpenAI-style messages: [{"role", "content" (string or null), "tool_calls": [{"type",
// "function": {"name", "arguments"}}]}]. A missing content is treated as null. Throws
// std::runtime_error naming the message index for shapes the template cannot render
// (non-string content of user/system/tool, non-string arguments).
std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages);

class Tokenizer;

class ChatTemplate {
 public:
  ChatTemplate(ChatTemplateOptions options, std::string bos_token);
  // From the tokenizer's tokenizer_config.json chat_template and bos_token; nullopt when it has
  // no template or not a DeepSeek V3/R1-style one.
  static std::optional<ChatTemplate> from_tokenizer(const Tokenizer& tokenizer);

  // Throws std::runtime_error where Jinja would fail (e.g. user content null).
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  const ChatTemplateOptions& options() const { return options_; }

 private:
  ChatTemplateOptions options_;
  std::string bos_token_;
};

// The one path from chat messages (an OpenAI-style JSON list) to prompt ids: parse, render,
// encode without adding special tokens (the rendered text already starts with BOS).
// Throws std::runtime_error / std::invalid_argument on bad messages.
struct ChatPrompt {
  std::string text;  // the rendered template
  std::vector<int> ids;
};
ChatPrompt encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat,
                       const nlohmann::json& messages, bool add_generation_prompt);

}  // namespace dpep::text
