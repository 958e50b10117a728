// Request parsing and validation of dpep serve's endpoints, and the OpenAI error shape.
#include <gtest/gtest.h>

#include "launch/serve/serve_api.h"
#include "launch/serve/serve_response.h"
#include "runtime/tokenizer/preset_tokenizer.h"

using namespace dpep;
using nlohmann::json;

namespace {

ServeLimits limits() {
  ServeLimits l;
  l.vocab_size = 512;
  l.max_model_len = 100;
  l.served_model_name = std::string(1, 'm');
  return l;
}

// Status and param of the ApiError `f` throws; fails the test if it throws nothing.
std::pair<int, std::string> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return {e.status(), e.param()};
  }
  ADD_FAILURE() << "no ApiError thrown";
  return {0, ""};
}

std::pair<int, std::string> completion_error(const std::string& body,
                                             const ServeLimits& l = limits()) {
  return error_of([&] { parse_completion_request(parse_json_body(body), l); });
}

}  // namespace

TEST(ServeApi, CompletionFieldsReachTheRequest) {
  const auto a = parse_completion_request(
      json::parse(
          R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
                      "top_k": 20, "min_p": 0.1, "seed": 42, "ignore_eos": true, "stop_token_ids": [5],
                      "logprobs": 3, "stream": true, "stream_options": {"include_usage": true},
                      "some_unknown_field": {"x": 1}, "best_of": 1, "n": 1})"),
      limits());
  EXPECT_EQ(a.request.prompt, (std::vector<int>{1, 2, 3}));
  const auto& s = a.request.sampling;
  EXPECT_EQ(s.max_tokens, 7);
  EXPECT_FLOAT_EQ(s.temperature, 0.5f);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.top_k, 20);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.seed, 42);
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_EQ(s.stop_token_ids, std::vector<int>{5});
  EXPECT_TRUE(s.logprobs);
  EXPECT_EQ(s.top_logprobs, 3);
  EXPECT_EQ(a.completion_logprobs, 3);
  EXPECT_TRUE(a.stream);
  EXPECT_TRUE(a.include_usage);
  EXPECT_EQ(a.model, "m");
}

TEST(ServeApi, CompletionDefaultsFollowOpenAI) {
  const auto a = parse_completion_request(json::parse(R"({"prompt": [[4, 5]]})"), limits());
  EXPECT_EQ(a.request.prompt, (std::vector<int>{4, 5}));  // a batch of one prompt
  EXPECT_EQ(a.request.sampling.max_tokens, 16);
  EXPECT_FLOAT_EQ(a.request.sampling.temperature, 1.0f);
  EXPECT_FALSE(a.stream);
  EXPECT_EQ(a.completion_logprobs, -1);
  EXPECT_EQ(a.request.sampling.top_k, 0);
}

TEST(ServeApi, BadParametersAre400WithTheParam) {
  EXPECT_EQ(completion_error("{not json"), std::make_pair(400, std::string()));
  EXPECT_EQ(completion_error("[1, 2]"), std::make_pair(400, std::string()));
  EXPECT_EQ(completion_error(R"({"max_tokens": 3})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": []})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1, 512]})"),
            std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1, -1]})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1, 2.5]})"),
            std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [[1], [2]]})"),
            std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "max_tokens": -1})"),
            std::make_pair(400, std::string("max_tokens")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "max_tokens": 0})"),
            std::make_pair(400, std::string("max_tokens")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "max_tokens": "9"})"),
            std::make_pair(400, std::string("max_tokens")));
  EXPECT_EQ(completion_error(R"({"prompt": [1, 2], "max_tokens": 99})"),
            std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "temperature": -0.1})"),
            std::make_pair(400, std::string("temperature")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "top_p": 0})"),
            std::make_pair(400, std::string("top_p")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "top_p": 1.5})"),
            std::make_pair(400, std::string("top_p")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "top_k": -2})"),
            std::make_pair(400, std::string("top_k")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "min_p": 2})"),
            std::make_pair(400, std::string("min_p")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "n": 2})"), std::make_pair(400, std::string("n")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "logprobs": 21})"),
            std::make_pair(400, std::string("logprobs")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "logprobs": true})"),
            std::make_pair(400, std::string("logprobs")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "stream": "yes"})"),
            std::make_pair(400, std::string("stream")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "stop_token_ids": [600]})"),
            std::make_pair(400, std::string("stop_token_ids")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "repetition_penalty": 1.2})"),
            std::make_pair(400, std::string("repetition_penalty")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "model": "other"})"),
            std::make_pair(404, std::string("model")));
}

TEST(ServeApi, ContextAndKvCacheLimits) {
  ServeLimits l = limits();
  EXPECT_NO_THROW(
      parse_completion_request(json::parse(R"({"prompt": [1, 2], "max_tokens": 98})"), l));
  EXPECT_EQ(completion_error(R"({"prompt": [1, 2], "max_tokens": 99})", l).first, 400);
  l.kv_cache_tokens = 50;
  EXPECT_EQ(completion_error(R"({"prompt": [1, 2], "max_tokens": 49})", l),
            std::make_pair(400, std::string("prompt")));
  EXPECT_NO_THROW(
      parse_completion_request(json::parse(R"({"prompt": [1, 2], "max_tokens": 48})"), l));
}

TEST(ServeApi, TextNeedsATokenizer) {
  EXPECT_EQ(completion_error(R"({"prompt": "hello"})"), std::make_pair(400, std::string("prompt")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "stop": "x"})"),
            std::make_pair(400, std::string("stop")));
  EXPECT_EQ(
      error_of([] { parse_chat_request(json::parse(R"({"messages": []})"), limits()); }).first,
      501);

  const auto tok = text::Tokenizer::from_json(text::build_preset_tokenizer_json(512),
                                              text::build_preset_tokenizer_config_json());
  const auto chat = text::ChatTemplate::from_tokenizer(tok);
  ASSERT_TRUE(chat.has_value());
  ServeLimits l = limits();
  l.tokenizer = &tok;
  l.chat_template = &*chat;
  const auto a =
      parse_completion_request(json::parse(R"({"prompt": "hello world", "stop": ["\n", ""]})"), l);
  EXPECT_EQ(a.request.prompt, tok.encode("hello world", true));
  EXPECT_EQ(a.stop, std::vector<std::string>{"\n"});  // empty stop strings dropped

  const auto c = parse_chat_request(
      json::parse(R"({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5,
                      "logprobs": true, "top_logprobs": 2})"),
      l);
  const std::vector<text::ChatMessage> msgs = {{"user", std::string("hi"), {}}};
  EXPECT_EQ(c.request.prompt, tok.encode(chat->render(msgs, true), false));
  EXPECT_EQ(c.request.sampling.max_tokens, 5);
  EXPECT_TRUE(c.chat_logprobs);
  EXPECT_EQ(c.request.sampling.top_logprobs, 2);
  // Without max_tokens a chat may use the rest of the context.
  const auto d =
      parse_chat_request(json::parse(R"({"messages": [{"role": "user", "content": "hi"}]})"), l);
  EXPECT_EQ(d.request.sampling.max_tokens,
            l.max_model_len - static_cast<int>(d.request.prompt.size()));
  EXPECT_EQ(error_of([&] {
              parse_chat_request(json::parse(R"({"messages": [{"role": "user", "content": 5}]})"),
                                 l);
            }),
            std::make_pair(400, std::string("messages")));
  EXPECT_EQ(
      error_of([&] {
        parse_chat_request(
            json::parse(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})"),
            l);
      }),
      std::make_pair(400, std::string("top_logprobs")));
}

TEST(ServeApi, SglangGenerateShape) {
  const auto a = parse_generate_request(
      json::parse(
          R"({"input_ids": [3, 4], "sampling_params": {"max_new_tokens": 9, "temperature": 0,
                      "top_k": -1, "ignore_eos": true, "stop_token_ids": [7]}, "stream": true})"),
      limits());
  EXPECT_EQ(a.request.prompt, (std::vector<int>{3, 4}));
  EXPECT_EQ(a.request.sampling.max_tokens, 9);
  EXPECT_EQ(a.request.sampling.top_k, 0);
  EXPECT_TRUE(a.request.sampling.ignore_eos);
  EXPECT_TRUE(a.stream);
  EXPECT_EQ(error_of([] {
              parse_generate_request(json::parse(R"({"sampling_params": {}})"), limits());
            }).first,
            400);
  EXPECT_EQ(error_of([] {
              parse_generate_request(
                  json::parse(R"({"input_ids": [1], "sampling_params": {"max_new_tokens": -3}})"),
                  limits());
            }),
            std::make_pair(400, std::string("max_new_tokens")));
}

TEST(ServeApi, ErrorBodyHasOpenAIShape) {
  const json b = ApiError(429, "busy").body();
  ASSERT_TRUE(b.contains("error"));
  EXPECT_EQ(b["error"]["message"], "busy");
  EXPECT_EQ(b["error"]["type"], "rate_limit_error");
  EXPECT_TRUE(b["error"]["param"].is_null());
  EXPECT_EQ(b["error"]["code"], 429);
  EXPECT_EQ(bad_request("x", "top_p").body()["error"]["type"], "invalid_request_error");
  EXPECT_EQ(bad_request("x", "top_p").body()["error"]["param"], "top_p");
  EXPECT_EQ(ApiError(401, "k").body()["error"]["type"], "authentication_error");
  EXPECT_EQ(ApiError(503, "s").body()["error"]["type"], "service_unavailable_error");
}

TEST(ServeApi, ResponseShapes) {
  ResponseMeta m{"cmpl-1", 5, "m"};
  const std::vector<int> ids = {7, 8};
  const json c = completion_json(m, "ab", ids, nullptr, FinishReason::Length);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["choices"][0]["token_ids"], json(ids));
  EXPECT_TRUE(
      completion_json(m, "", ids, nullptr, FinishReason::None)["choices"][0]["finish_reason"]
          .is_null());
  const json u = usage_json(3, 4);
  EXPECT_EQ(u["total_tokens"], 7);
  const json g = generate_json("1", "ab", ids, 3, FinishReason::Stop);
  EXPECT_EQ(g["meta_info"]["finish_reason"]["type"], "stop");
  EXPECT_EQ(g["meta_info"]["completion_tokens"], 2);
  std::vector<TokenLogprobs> lps(2);
  lps[0].logprob = -0.5f;
  lps[0].top = {{7, -0.5f}, {9, -1.5f}};
  lps[1].logprob = -0.25f;
  lps[1].top = {{8, -0.25f}, {3, -2.0f}};
  const json lp = completion_logprobs_json(nullptr, ids, lps, 1, 10);
  EXPECT_EQ(lp["tokens"], json({"token_id:7", "token_id:8"}));
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -0.25f);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 1u);  // K = 1 of the 2 reported
  EXPECT_EQ(lp["text_offset"][0], 10);
  EXPECT_EQ(lp["text_offset"][1], 10 + std::string("token_id:7").size());
}

namespace {

std::pair<int, std::string> chat_error(const std::string& extra, const ServeLimits& l) {
  return error_of([&] {
    parse_chat_request(
        parse_json_body(R"({"messages": [{"role": "user", "content": "hi"}])" + extra + "}"), l);
  });
}

}  // namespace

// Parameters dpep does not implement: neutral values pass, anything else is a 400 naming them.
TEST(ServeApi, UnsupportedParametersAreRefusedUnlessNeutral) {
  const auto tok = text::Tokenizer::from_json(text::build_preset_tokenizer_json(512),
                                              text::build_preset_tokenizer_config_json());
  const text::ChatTemplate v3(text::chat_template_options(text::ChatTemplateKind::kDeepSeekV3),
                              "<bos>");
  const text::ChatTemplate r1(text::chat_template_options(text::ChatTemplateKind::kDeepSeekR1),
                              "<bos>");
  ServeLimits l = limits();
  l.tokenizer = &tok;
  l.chat_template = &v3;
  auto chat_ok = [&](const std::string& extra, const ServeLimits& lim) {
    return parse_chat_request(
        parse_json_body(R"({"messages": [{"role": "user", "content": "hi"}])" + extra + "}"), lim);
  };
  // Neutral values are accepted and change nothing.
  const auto plain = chat_ok("", l);
  const auto neutral = chat_ok(
      R"(, "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
         "parallel_tool_calls": false, "functions": [], "function_call": "auto", "logit_bias": {},
         "modalities": ["text"], "audio": null, "reasoning_effort": null, "min_tokens": 0,
         "chat_template_kwargs": {}, "user": "u1")",
      l);
  EXPECT_EQ(neutral.request.prompt, plain.request.prompt);
  EXPECT_EQ(neutral.request.sampling.max_tokens, plain.request.sampling.max_tokens);
  chat_ok(R"(, "tool_choice": "auto")", l);
  // Anything else: 400 with the parameter's name.
  const std::pair<std::string, std::string> refused[] = {
      {R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}])",
       "tools"},
      {R"(, "tool_choice": "required")", "tool_choice"},
      {R"(, "tool_choice": {"type": "function", "function": {"name": "f"}})", "tool_choice"},
      {R"(, "response_format": {"type": "json_object"})", "response_format"},
      {R"(, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}})",
       "response_format"},
      {R"(, "logit_bias": {"5": 10})", "logit_bias"},
      {R"(, "functions": [{"name": "f"}])", "functions"},
      {R"(, "modalities": ["text", "audio"])", "modalities"},
      {R"(, "reasoning_effort": "high")", "reasoning_effort"},
      {R"(, "min_tokens": 4)", "min_tokens"},
      {R"(, "guided_json": {"type": "object"})", "guided_json"},
      {R"(, "chat_template": "{{ messages }}")", "chat_template"},
      {R"(, "chat_template_kwargs": {"thinking": true})", "chat_template_kwargs.thinking"},
      {R"(, "chat_template_kwargs": {"foo": 1})", "chat_template_kwargs.foo"},
      {R"(, "chat_template_kwargs": 3)", "chat_template_kwargs"},
  };
  for (const auto& [extra, param] : refused)
    EXPECT_EQ(chat_error(extra, l), std::make_pair(400, param)) << extra;
  // The thinking switch: honoured at the template's own mode (V3 never thinks, R1 always does).
  chat_ok(R"(, "chat_template_kwargs": {"thinking": false, "enable_thinking": false})", l);
  ServeLimits lr = l;
  lr.chat_template = &r1;
  chat_ok(R"(, "chat_template_kwargs": {"thinking": true})", lr);
  EXPECT_EQ(chat_error(R"(, "chat_template_kwargs": {"enable_thinking": false})", lr),
            std::make_pair(400, std::string("chat_template_kwargs.enable_thinking")));
  // Completions and /generate.
  parse_completion_request(
      json::parse(R"({"prompt": [1], "suffix": "", "response_format": {"type": "text"}})"),
      limits());
  EXPECT_EQ(completion_error(R"({"prompt": [1], "suffix": "end"})"),
            std::make_pair(400, std::string("suffix")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "response_format": {"type": "json_object"}})"),
            std::make_pair(400, std::string("response_format")));
  EXPECT_EQ(completion_error(R"({"prompt": [1], "logit_bias": {"3": -100}})"),
            std::make_pair(400, std::string("logit_bias")));
  parse_generate_request(
      json::parse(
          R"({"input_ids": [1], "return_logprob": false, "sampling_params": {"min_new_tokens": 0, "max_new_tokens": 4}})"),
      limits());
  EXPECT_EQ(error_of([] {
              parse_generate_request(
                  json::parse(R"({"input_ids": [1], "sampling_params": {"regex": "a+"}})"),
                  limits());
            }),
            std::make_pair(400, std::string("regex")));
  EXPECT_EQ(error_of([] {
              parse_generate_request(json::parse(R"({"input_ids": [1], "return_logprob": true})"),
                                     limits());
            }),
            std::make_pair(400, std::string("return_logprob")));
  // The message names the parameter and its neutral value.
  try {
    chat_ok(R"(, "tools": [{"type": "function"}])", l);
    ADD_FAILURE() << "tools accepted";
  } catch (const ApiError& e) {
    EXPECT_NE(
        std::string(e.what()).find("'tools' is not supported by dpep: leave it out or send []"),
        std::string::npos)
        << e.what();
  }
}

// Odd shapes of the refused parameters are 400s too, never another exception (a 500).
TEST(ServeApi, UnsupportedParametersOfOddShapes) {
  for (const char* body :
       {R"({"prompt": [1], "response_format": {"type": 5}})",
        R"({"prompt": [1], "response_format": "text"})", R"({"prompt": [1], "logit_bias": []})",
        R"({"prompt": [1], "suffix": 3})", R"({"prompt": [1], "min_tokens": "0"})"})
    EXPECT_EQ(completion_error(body).first, 400) << body;
}
