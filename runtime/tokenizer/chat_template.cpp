#include "runtime/tokenizer/chat_template.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "runtime/tokenizer/tokenizer.h"

namespace dpep::text {
namespace {

constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr std::string_view kOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr std::string_view kOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr std::string_view kOutputBegin = "<｜tool▁output▁begin｜>";
constexpr std::string_view kOutputEnd = "<｜tool▁output▁end｜>";

const std::string& text_of(const ChatMessage& m, size_t index) {
  if (!m.content) {
    throw std::runtime_error("message " + std::to_string(index) + " (" + m.role +
                             "): content must be a string");
  }
  return *m.content;
}

// type + sep + name + "\n```json\n" + arguments + "\n```" + call end
void append_call(std::string& out, const ToolCall& c) {
  out.append(c.type).append(kSep).append(c.name);
  out.append("\n```json\n").append(c.arguments).append("\n```").append(kCallEnd);
}

}  // namespace

ChatTemplateOptions chat_template_options(ChatTemplateKind kind) {
  ChatTemplateOptions o;
  if (kind == ChatTemplateKind::kDeepSeekR1) {
    o.join_system_prompts = false;
    o.drop_reasoning = true;
    o.generation_suffix = "<think>\n";
  }
  return o;
}

std::optional<ChatTemplateOptions> detect_chat_template(std::string_view jinja) {
  if (jinja.find(kUser) == std::string_view::npos ||
      jinja.find(kAssistant) == std::string_view::npos) {
    return std::nullopt;
  }
  ChatTemplateOptions o;
  // V3 accumulates with is_first_sp; R1 does `set ns.system_prompt = message['content']`.
  o.join_system_prompts = jinja.find("is_first_sp") != std::string_view::npos;
  o.drop_reasoning = jinja.find("split('</think>')") != std::string_view::npos;
  // The generation prompt literal: '<｜Assistant｜><think>\n' (Jinja escape or a raw newline).
  const std::string prompt = std::string(kAssistant) + "<think>";
  for (size_t at = jinja.find(prompt); at != std::string_view::npos;
       at = jinja.find(prompt, at + 1)) {
    const std::string_view after = jinja.substr(at + prompt.size());
    if (after.starts_with("\\n'") || after.starts_with("\n'")) {
      o.generation_suffix = "<think>\n";
    } else if (after.starts_with("'") && o.generation_suffix.empty()) {
      o.generation_suffix = "<think>";
    }
  }
  return o;
}

std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages) {
  if (!messages.is_array()) throw std::runtime_error("messages must be an array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string where = "message " + std::to_string(i);
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      throw std::runtime_error(where + ": needs a string \"role\"");
    }
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    if (m.contains("content") && !m["content"].is_null()) {
      if (!m["content"].is_string()) {
        throw std::runtime_error(where + ": content must be a string or null");
      }
      msg.content = m["content"].get<std::string>();
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      for (const auto& c : m["tool_calls"]) {
        ToolCall call;
        call.type = c.value("type", "function");
        const auto& f = c.at("function");
        call.name = f.at("name").get<std::string>();
        if (!f.at("arguments").is_string()) {
          throw std::runtime_error(where + ": tool_calls[].function.arguments must be a string");
        }
        call.arguments = f["arguments"].get<std::string>();
        msg.tool_calls.push_back(std::move(call));
      }
    }
    out.push_back(std::move(msg));
  }
  return out;
}

ChatTemplate::ChatTemplate(ChatTemplateOptions options, std::string bos_token)
    : options_(std::move(options)), bos_token_(std::move(bos_token)) {}

std::optional<ChatTemplate> ChatTemplate::from_tokenizer(const Tokenizer& tokenizer) {
  auto options = detect_chat_template(tokenizer.chat_template());
  if (!options) return std::nullopt;
  return ChatTemplate(std::move(*options), tokenizer.bos_token());
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) const {
  std::string system;
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "system") continue;
    const std::string& text = text_of(messages[i], i);
    if (!options_.join_system_prompts) {
      system = text;
    } else {
      system += first_system ? text : "\n\n" + text;
    }
    first_system = false;
  }
  std::string out = bos_token_ + system;
  // The template's namespace flags. is_first and is_output_first are never reset, so only the
  // very first tool call / tool output of the conversation gets the "begin" markers, and a
  // single tool call gets no "<｜tool▁calls▁end｜>": the Jinja does exactly this.
  bool is_first = false, is_tool = false, is_output_first = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      is_tool = false;
      out.append(kUser).append(text_of(m, i));
    } else if (m.role == "assistant" && !m.content) {
      is_tool = false;
      for (const ToolCall& c : m.tool_calls) {
        if (!is_first) {
          out.append(kAssistant).append(kCallsBegin).append(kCallBegin);
          append_call(out, c);
          is_first = true;
        } else {
          out.append("\n").append(kCallBegin);
          append_call(out, c);
          out.append(kCallsEnd).append(kEos);
        }
      }
    } else if (m.role == "assistant") {
      if (is_tool) {
        out.append(kOutputsEnd).append(*m.content).append(kEos);
        is_tool = false;
      } else {
        std::string_view content = *m.content;
        if (options_.drop_reasoning) {
          const size_t end = content.rfind("</think>");
          if (end != std::string_view::npos) content.remove_prefix(end + 8);
        }
        out.append(kAssistant).append(content).append(kEos);
      }
    } else if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out.append(kOutputsBegin).append(kOutputBegin);
        is_output_first = false;
      } else {
        out.append("\n").append(kOutputBegin);
      }
      out.append(text_of(m, i)).append(kOutputEnd);
    }
  }
  if (is_tool) out.append(kOutputsEnd);
  if (add_generation_prompt && !is_tool) out.append(kAssistant).append(options_.generation_suffix);
  return out;
}

ChatPrompt encode_chat(const Tokenizer& tokenizer, const ChatTemplate& chat,
                       const nlohmann::json& messages, bool add_generation_prompt) {
  ChatPrompt p;
  p.text = chat.render(parse_chat_messages(messages), add_generation_prompt);
  p.ids = tokenizer.encode(p.text, false);
  return p;
}

}  // namespace dpep::text
