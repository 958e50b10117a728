#include "launch/serve/serve_generate.h"

#include <fmt/format.h>

#include <ctime>

#include "launch/serve/client_socket.h"
#include "launch/serve/serve_response.h"
#include "launch/serve/serve_session.h"

namespace dpep {

using nlohmann::json;

namespace {

constexpr auto kWait = std::chrono::milliseconds(250);
// How often a non-streaming request checks whether its client is still connected.
constexpr auto kPeerCheck = std::chrono::milliseconds(50);

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string sse(const json& j) {
  std::string s = "data: ";
  s += dump(j);
  s += "\n\n";
  return s;
}
const char kDone[] = "data: [DONE]\n\n";

// Everything one request's response needs, shared by the handler and the stream provider.
struct Call {
  ApiKind kind = ApiKind::Completion;
  ApiRequest req;
  ResponseMeta meta;
  const ServeLimits* lim = nullptr;
  bool reasoning = false;
  std::unique_ptr<GenerationSession> sess;
  // Accumulated output.
  std::string text, reasoning_text;
  std::vector<int> ids;
  std::vector<TokenLogprobs> lps;
  size_t text_offset = 0;
  bool started = false;
};

std::string echo_text(const Call& c) {
  if (!c.req.echo || !c.lim->tokenizer) return "";
  return c.lim->tokenizer->decode(c.req.request.prompt, c.req.skip_special_tokens);
}

json completion_lp(Call& c, const SessionUpdate& u) {
  if (c.req.completion_logprobs < 0) return nullptr;
  json lp = completion_logprobs_json(c.lim->tokenizer, u.ids, u.logprobs, c.req.completion_logprobs,
                                     c.text_offset);
  for (const auto& t : lp["tokens"]) c.text_offset += t.get<std::string>().size();
  return lp;
}

json chat_lp(const Call& c, const SessionUpdate& u) {
  if (!c.req.chat_logprobs) return nullptr;
  return chat_logprobs_json(c.lim->tokenizer, u.ids, u.logprobs);
}

ApiError engine_error(const SessionUpdate& u) {
  if (u.finish == FinishReason::Abort)
    return ApiError(503, "the request was aborted: the server is shutting down");
  return ApiError(u.error_before_output ? 400 : 500,
                  u.error.empty() ? "the engine failed the request" : u.error);
}

// SSE text of the first chunk (chat: the role; completions: the echoed prompt).
std::string first_chunk(Call& c) {
  if (c.kind == ApiKind::Chat)
    return sse(chat_chunk_json(c.meta, json{{"role", "assistant"}, {"content", ""}}, nullptr,
                               FinishReason::None));
  if (c.kind == ApiKind::Completion) {
    const std::string e = echo_text(c);
    if (!e.empty()) {
      c.text_offset += e.size();
      return sse(completion_json(c.meta, e, {}, nullptr, FinishReason::None));
    }
  }
  return "";
}

// SSE text of one update, plus the closing chunks when it finishes the request.
std::string stream_update(Call& c, const SessionUpdate& u) {
  std::string out;
  const bool finishing = u.finish != FinishReason::None;
  if (u.finish == FinishReason::Error || u.finish == FinishReason::Abort) {
    // Tokens of this update first, then the error event.
    if (!u.ids.empty() && c.kind != ApiKind::Chat) {
      SessionUpdate part = u;
      part.finish = FinishReason::None;
      out += stream_update(c, part);
    }
    out += sse(engine_error(u).body());
    out += kDone;
    return out;
  }
  switch (c.kind) {
    case ApiKind::Completion:
      if (!u.ids.empty() || !u.text.empty() || finishing)
        out += sse(completion_json(c.meta, u.text, u.ids, completion_lp(c, u), u.finish));
      break;
    case ApiKind::Chat: {
      json delta = json::object();
      if (!u.reasoning.empty()) delta["reasoning_content"] = u.reasoning;
      if (!u.text.empty()) delta["content"] = u.text;
      if (!delta.empty() || finishing)
        out += sse(chat_chunk_json(c.meta, delta, chat_lp(c, u), u.finish));
      break;
    }
    case ApiKind::Generate:
      c.text += u.text;
      c.ids.insert(c.ids.end(), u.ids.begin(), u.ids.end());
      if (!u.ids.empty() || finishing)
        out += sse(generate_json(c.meta.id, c.text, c.ids, c.sess->prompt_tokens(), u.finish));
      break;
  }
  if (finishing) {
    if (c.req.include_usage && c.kind != ApiKind::Generate) {
      json usage_chunk{
          {"id", c.meta.id},
          {"object", c.kind == ApiKind::Chat ? "chat.completion.chunk" : "text_completion"},
          {"created", c.meta.created},
          {"model", c.meta.model},
          {"choices", json::array()},
          {"usage", usage_json(c.sess->prompt_tokens(), c.sess->completion_tokens())}};
      out += sse(usage_chunk);
    }
    out += kDone;
  }
  return out;
}

void stream_response(std::shared_ptr<Call> c, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [c](size_t, httplib::DataSink& sink) {
        std::string out;
        if (!c->started) {
          c->started = true;
          out += first_chunk(*c);
        }
        SessionUpdate u;
        if (c->sess->next(u, kWait)) out += stream_update(*c, u);
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          c->sess->cancel();  // the client went away: free its pages now
          return false;
        }
        if (c->sess->finished()) sink.done();
        return true;
      },
      [c](bool) { c->sess->cancel(); });
}

// A non-streaming client that closes its connection cancels its request (its rank frees the
// KV pages): every kPeerCheck its socket is polled. The socket is looked up at the first check, so
// requests that finish within kWait never pay for the lookup.
void whole_response(Call& c, const httplib::Request& req, httplib::Response& res) {
  SessionUpdate u;
  FinishReason finish = FinishReason::None;
  int fd = -2;  // -2: not looked up yet; -1: not found
  auto next_check = std::chrono::steady_clock::now() + kPeerCheck;
  while (!c.sess->finished()) {
    const bool got = c.sess->next(u, kPeerCheck);
    if (std::chrono::steady_clock::now() >= next_check) {
      next_check = std::chrono::steady_clock::now() + kPeerCheck;
      if (fd == -2) fd = find_tcp_socket(req.remote_addr, req.remote_port, req.local_port);
      if (fd >= 0 && peer_closed(fd)) {
        c.sess->cancel();
        throw ApiError(499, "the client closed the connection");
      }
    }
    if (!got) continue;
    c.text += u.text;
    c.reasoning_text += u.reasoning;
    c.ids.insert(c.ids.end(), u.ids.begin(), u.ids.end());
    c.lps.insert(c.lps.end(), u.logprobs.begin(), u.logprobs.end());
    if (u.finish == FinishReason::Error || u.finish == FinishReason::Abort) throw engine_error(u);
    finish = u.finish;
  }
  json body;
  SessionUpdate all;
  all.ids = c.ids;
  all.logprobs = c.lps;
  switch (c.kind) {
    case ApiKind::Completion: {
      const std::string e = echo_text(c);
      c.text_offset = e.size();
      body = completion_json(c.meta, e + c.text, c.ids, completion_lp(c, all), finish);
      body["usage"] = usage_json(c.sess->prompt_tokens(), c.sess->completion_tokens());
      break;
    }
    case ApiKind::Chat:
      body = chat_json(c.meta, c.text, c.reasoning_text, c.reasoning, chat_lp(c, all), finish);
      body["usage"] = usage_json(c.sess->prompt_tokens(), c.sess->completion_tokens());
      break;
    case ApiKind::Generate:
      body = generate_json(c.meta.id, c.text, c.ids, c.sess->prompt_tokens(), finish);
      break;
  }
  res.status = 200;
  res.set_content(dump(body), "application/json");
}

}  // namespace

void write_error(httplib::Response& res, int status, const std::string& message,
                 const std::string& param) {
  res.status = status;
  res.set_content(dump(ApiError(status, message, param).body()), "application/json");
}

void handle_generation(ApiKind kind, const httplib::Request& req, httplib::Response& res,
                       const GenerateContext& ctx) {
  const json j = parse_json_body(req.body);
  auto c = std::make_shared<Call>();
  c->kind = kind;
  c->lim = ctx.limits;
  switch (kind) {
    case ApiKind::Completion:
      c->req = parse_completion_request(j, *ctx.limits);
      break;
    case ApiKind::Chat:
      c->req = parse_chat_request(j, *ctx.limits);
      break;
    case ApiKind::Generate:
      c->req = parse_generate_request(j, *ctx.limits);
      break;
  }
  c->reasoning = kind == ApiKind::Chat && ctx.reasoning_parser;
  c->sess = std::make_unique<GenerationSession>(*ctx.source, c->req, *ctx.limits, c->reasoning);
  const char* prefix = kind == ApiKind::Chat         ? "chatcmpl-"
                       : kind == ApiKind::Completion ? "cmpl-"
                                                     : "";
  c->meta.id = prefix;
  c->meta.id += std::to_string(c->sess->id());
  c->meta.created = static_cast<int64_t>(std::time(nullptr));
  c->meta.model = c->req.model;
  if (c->req.stream)
    stream_response(std::move(c), res);
  else
    whole_response(*c, req, res);
}

}  // namespace dpep
