// The DeepSeek-V3/R1 chat template in C++ against (1) reference.json's chats, rendered by
// transformers from the real template, and (2) conversations rendered by hand from the
// template text in tests/data/deepseek-v3-tokenizer/tokenizer_config.json (tool calls, tool
// outputs, several system prompts, reasoning in history), each expected string below being
// the template's output traced statement by statement.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace {

using namespace dpep::text;
using nlohmann::json;
const std::string kDir = std::string(DPEP_TEST_DATA) + "/deepseek-v3-tokenizer";
const std::string kBos = "<｜begin▁of▁sentence｜>";

const Tokenizer& tok() {
  static const Tokenizer t = Tokenizer::from_directory(kDir);
  return t;
}

std::string render(const ChatTemplate& t, const json& messages, bool gen) {
  return t.render(parse_chat_messages(messages), gen);
}

ChatTemplate v3() {
  return *ChatTemplate::from_tokenizer(tok());
}
ChatTemplate r1() {
  return ChatTemplate(chat_template_options(ChatTemplateKind::kDeepSeekR1), kBos);
}

TEST(ChatTemplate, DetectsV3FromTheShippedTemplate) {
  const auto o = detect_chat_template(tok().chat_template());
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->join_system_prompts);
  EXPECT_FALSE(o->drop_reasoning);
  EXPECT_EQ(o->generation_suffix, "");
  EXPECT_FALSE(detect_chat_template("{{ messages }}<|im_start|>"));
}

TEST(ChatTemplate, ReferenceChatsExact) {
  std::ifstream in(kDir + "/reference.json");
  const auto ref = json::parse(in);
  ASSERT_FALSE(ref["chats"].empty());
  for (const auto& c : ref["chats"]) {
    const std::string text = render(v3(), c["messages"], c["add_generation_prompt"]);
    EXPECT_EQ(text, c["text"].get<std::string>());
    EXPECT_EQ(tok().encode(text, false), c["ids"].get<std::vector<int>>());
  }
}

const json kToolChat = json::parse(R"([
  {"role": "system", "content": "S1"},
  {"role": "system", "content": "S2"},
  {"role": "user", "content": "What is the weather?"},
  {"role": "assistant", "content": null, "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
  {"role": "tool", "content": "sunny"},
  {"role": "tool", "content": "22C"},
  {"role": "assistant", "content": "It is sunny."},
  {"role": "developer", "content": "ignored: the template has no branch for this role"},
  {"role": "user", "content": "Thanks"}])");

TEST(ChatTemplate, V3ToolCallsAndOutputsByHand) {
  // Systems joined by "\n\n"; the first (only) call gets the Assistant + calls-begin markers
  // and no calls-end (that is emitted only after a second call); tool outputs open with
  // outputs-begin once, later ones with "\n"; the answer after tools starts with outputs-end.
  const std::string want =
      kBos + "S1\n\nS2" + "<｜User｜>What is the weather?" +
      "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_"
      "weather\n"
      "```json\n{\"city\":\"Paris\"}\n```<｜tool▁call▁end｜>" +
      "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny<｜tool▁output▁end｜>" +
      "\n<｜tool▁output▁begin｜>22C<｜tool▁output▁end｜>" +
      "<｜tool▁outputs▁end｜>It is sunny.<｜end▁of▁sentence｜>" + "<｜User｜>Thanks" +
      "<｜Assistant｜>";
  EXPECT_EQ(render(v3(), kToolChat, true), want);
  // Without the generation prompt the text simply stops after the last user turn.
  EXPECT_EQ(render(v3(), kToolChat, false),
            want.substr(0, want.size() - std::string("<｜Assistant｜>").size()));
}

TEST(ChatTemplate, V3TwoCallsThenToolOutputEndsTheText) {
  const json chat = json::parse(R"([
    {"role": "user", "content": "Q"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": "{}"}},
      {"type": "function", "function": {"name": "g", "arguments": "[1]"}}]},
    {"role": "tool", "content": "r1"}])");
  const std::string want =
      kBos + "<｜User｜>Q" +
      "<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```"
      "json\n{}\n```"
      "<｜tool▁call▁end｜>" +
      "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n```json\n[1]\n```<｜tool▁call▁end｜>"
      "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>" +
      "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜>" +
      "<｜tool▁outputs▁end｜>";  // last message is a tool output: no generation prompt
  EXPECT_EQ(render(v3(), chat, true), want);
}

const json kThinkChat = json::parse(R"([
  {"role": "system", "content": "S1"},
  {"role": "system", "content": "S2"},
  {"role": "user", "content": "2+2?"},
  {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
  {"role": "user", "content": "3+3?"}])");

TEST(ChatTemplate, V3KeepsReasoningInHistory) {
  EXPECT_EQ(render(v3(), kThinkChat, true),
            kBos +
                "S1\n\nS2<｜User｜>2+2?<｜Assistant｜><think>\nadd\n</think>\n\n4"
                "<｜end▁of▁sentence｜><｜User｜>3+3?<｜Assistant｜>");
}

TEST(ChatTemplate, R1DropsReasoningAndOpensTheThinkBlock) {
  // R1: last system prompt only, content after the last </think>, "<think>\n" in the prompt.
  EXPECT_EQ(render(r1(), kThinkChat, true),
            kBos +
                "S2<｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜><｜User｜>3+3?"
                "<｜Assistant｜><think>\n");
}

// R1's template differs from V3's in exactly three places; build it from the shipped V3 text.
std::string r1_template_text() {
  std::string t = tok().chat_template();
  auto replace = [&t](const std::string& from, const std::string& to) {
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) t.replace(at, from.size(), to);
  };
  const size_t sp = t.find("{%- if ns.is_first_sp %}");
  EXPECT_NE(sp, std::string::npos);
  const size_t sp_end = t.find("{%- endif %}", sp) + std::string("{%- endif %}").size();
  t.replace(sp, sp_end - sp, "{% set ns.system_prompt = message['content'] %}");
  replace(", is_first_sp=true", "");
  replace("{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}",
          "{% set content = message['content'] %}{% if '</think>' in content %}{% set content = "
          "content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + "
          "'<｜end▁of▁sentence｜>'}}");
  replace("{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\\n'}}{% endif %}");
  return t;
}

TEST(ChatTemplate, DetectsR1FromItsTemplateText) {
  const auto o = detect_chat_template(r1_template_text());
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->join_system_prompts);
  EXPECT_TRUE(o->drop_reasoning);
  EXPECT_EQ(o->generation_suffix, "<think>\n");
  const auto want = chat_template_options(ChatTemplateKind::kDeepSeekR1);
  EXPECT_EQ(o->generation_suffix, want.generation_suffix);
}

TEST(ChatTemplate, ShapesJinjaWouldRejectAreErrors) {
  EXPECT_THROW(render(v3(), json::parse(R"([{"role": "user", "content": null}])"), true),
               std::runtime_error);
  EXPECT_THROW(parse_chat_messages(json::parse(R"([{"role": "user", "content": [1]}])")),
               std::runtime_error);
  EXPECT_THROW(parse_chat_messages(json::parse(R"([{"content": "x"}])")), std::runtime_error);
  EXPECT_THROW(
      parse_chat_messages(json::parse(
          R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}])")),
      std::runtime_error);
  // Empty conversation: just BOS (+ prompt).
  EXPECT_EQ(render(v3(), json::array(), true), kBos + "<｜Assistant｜>");
}

}  // namespace
