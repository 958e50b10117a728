#include "launch/serve/serve_http.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <ctime>
#include <thread>

#include "launch/serve/serve_generate.h"

namespace dpep {

using nlohmann::json;

struct ServeHttp::Impl {
  ServeHttpOptions opt;
  ServeSource& source;
  ServeMetrics& metrics;
  const ServeLimits& limits;
  httplib::Server svr;
  std::thread thread;
  int port = 0;
  int listen_fd = -1;  // the listening socket, seen through set_socket_options
  int64_t created = static_cast<int64_t>(std::time(nullptr));

  Impl(ServeHttpOptions o, ServeSource& s, ServeMetrics& m, const ServeLimits& l)
      : opt(std::move(o)), source(s), metrics(m), limits(l) {}

  void routes();
  bool authorized(const httplib::Request& req) const;
  void json_reply(httplib::Response& res, const json& j) {
    res.status = 200;
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
  // Runs body, turning ApiError and other exceptions into error responses.
  void guarded(httplib::Response& res, const std::function<void()>& body);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  void detokenize(const httplib::Request& req, httplib::Response& res);
};

bool ServeHttp::Impl::authorized(const httplib::Request& req) const {
  if (opt.api_key.empty()) return true;
  const std::string h = req.get_header_value("Authorization");
  const std::string want = "Bearer " + opt.api_key;
  if (h.size() != want.size()) return false;
  unsigned diff = 0;  // same time whatever the first wrong byte
  for (size_t i = 0; i < h.size(); ++i) diff |= static_cast<unsigned char>(h[i] ^ want[i]);
  return diff == 0;
}

void ServeHttp::Impl::guarded(httplib::Response& res, const std::function<void()>& body) {
  try {
    body();
  } catch (const ApiError& e) {
    write_error(res, e.status(), e.what(), e.param());
  } catch (const std::exception& e) {
    write_error(res, 500, e.what());
  }
}

void ServeHttp::Impl::tokenize(const httplib::Request& req, httplib::Response& res) {
  if (!limits.tokenizer)
    throw ApiError(501, "/tokenize needs a tokenizer: this model file has none");
  const json j = parse_json_body(req.body);
  std::vector<int> ids;
  if (j.contains("messages")) {
    if (!limits.chat_template) throw ApiError(501, "this model's tokenizer has no chat template");
    try {
      ids = text::encode_chat(*limits.tokenizer, *limits.chat_template, j["messages"],
                              j.value("add_generation_prompt", true))
                .ids;
    } catch (const std::exception& e) {
      throw bad_request(e.what(), "messages");
    }
  } else {
    if (!j.contains("prompt") || !j["prompt"].is_string())
      throw bad_request("'prompt' (a string) is required", "prompt");
    const json& add = j.contains("add_special_tokens") ? j["add_special_tokens"] : json(true);
    if (!add.is_boolean())
      throw bad_request("'add_special_tokens' must be true or false", "add_special_tokens");
    ids = limits.tokenizer->encode(j["prompt"].get<std::string>(), add.get<bool>());
  }
  json_reply(res,
             json{{"count", ids.size()}, {"max_model_len", limits.max_model_len}, {"tokens", ids}});
}

void ServeHttp::Impl::detokenize(const httplib::Request& req, httplib::Response& res) {
  if (!limits.tokenizer)
    throw ApiError(501, "/detokenize needs a tokenizer: this model file has none");
  const json j = parse_json_body(req.body);
  if (!j.contains("tokens") || !j["tokens"].is_array())
    throw bad_request("'tokens' (a list of ids) is required", "tokens");
  std::vector<int> ids;
  for (const auto& t : j["tokens"]) {
    if (!t.is_number_integer() || !limits.tokenizer->is_valid(t.get<int>()))
      throw bad_request(fmt::format("token {} is not in the vocabulary", t.dump()), "tokens");
    ids.push_back(t.get<int>());
  }
  json_reply(res, json{{"prompt", limits.tokenizer->decode(ids, false)}});
}

void ServeHttp::Impl::routes() {
  // API key on the API routes; /health and /metrics stay open (as in vLLM).
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/v1/", 0) == 0 || req.path == "/generate" ||
                     req.path == "/tokenize" || req.path == "/detokenize";
    if (api && !authorized(req)) {
      write_error(res, 401, "invalid or missing API key (Authorization: Bearer <key>)");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    metrics.on_http(res.status);
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          write_error(res, 500, e.what());
        } catch (...) {
          write_error(res, 500, "unknown error");
        }
      });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty())
      write_error(res, res.status, fmt::format("{} {}: no such endpoint", req.method, req.path));
  });

  auto gen = [this](ApiKind kind) {
    return [this, kind](const httplib::Request& req, httplib::Response& res) {
      GenerateContext ctx{&source, &limits, opt.reasoning_parser};
      guarded(res, [&] { handle_generation(kind, req, res, ctx); });
    };
  };
  svr.Post("/v1/completions", gen(ApiKind::Completion));
  svr.Post("/v1/chat/completions", gen(ApiKind::Chat));
  svr.Post("/generate", gen(ApiKind::Generate));
  svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { tokenize(req, res); });
  });
  svr.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { detokenize(req, res); });
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m{{"id", limits.served_model_name},
           {"object", "model"},
           {"created", created},
           {"owned_by", "dpep"},
           {"max_model_len", limits.max_model_len},
           {"vocab_size", limits.vocab_size}};  // dpep extra: dpep bench draws prompt ids from it
    json_reply(res, json{{"object", "list"}, {"data", json::array({m})}});
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const std::string problem = opt.health_problem ? opt.health_problem() : std::string();
    if (source.shutting_down())
      write_error(res, 503, source.shutdown_message());
    else if (!problem.empty())
      write_error(res, 503, problem);
    else
      json_reply(res, json{{"status", "ok"}});
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    ServeGauges g;
    g.queued = source.num_queued();
    g.running = source.num_in_flight() - g.queued;
    g.ranks = source.rank_status();
    res.set_content(metrics.render(g), "text/plain; version=0.0.4");
  });
}

ServeHttp::ServeHttp(ServeHttpOptions opt, ServeSource& source, ServeMetrics& metrics,
                     const ServeLimits& limits)
    : impl_(std::make_unique<Impl>(std::move(opt), source, metrics, limits)) {
  const int threads = impl_->opt.threads;
  impl_->svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->svr.set_keep_alive_timeout(2);  // bounds how long stop() waits for idle connections
  impl_->svr.set_read_timeout(30);
  impl_->svr.set_write_timeout(30);
  impl_->routes();
}

ServeHttp::~ServeHttp() {
  stop();
}

void ServeHttp::bind() {
  // Debian's cpp-httplib is a compiled library: its listen backlog is fixed at 5, so a burst of
  // connections (dpep bench at concurrency 256, perf/load_test.sh) overflowed the accept queue
  // (SYN retries after 1 s, some connections reset). Listening again on the bound socket raises
  // the backlog. Its default socket options set SO_REUSEPORT, which let a second server bind a
  // port in use (and share its connections): SO_REUSEADDR only.
  impl_->svr.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    impl_->listen_fd = sock;
  });
  if (impl_->opt.port == 0) {
    impl_->port = impl_->svr.bind_to_any_port(impl_->opt.host);
    if (impl_->port <= 0)
      throw std::runtime_error(fmt::format("cannot bind {} to any port", impl_->opt.host));
  } else {
    if (!impl_->svr.bind_to_port(impl_->opt.host, impl_->opt.port))
      throw std::runtime_error(fmt::format("cannot listen on {}:{} (in use, or a bad address?)",
                                           impl_->opt.host, impl_->opt.port));
    impl_->port = impl_->opt.port;
  }
  if (impl_->listen_fd >= 0 && ::listen(impl_->listen_fd, 4096) != 0)
    throw std::runtime_error(fmt::format("cannot listen on {}:{}", impl_->opt.host, impl_->port));
}

void ServeHttp::start() {
  impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
}

void ServeHttp::stop() {
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int ServeHttp::port() const {
  return impl_->port;
}

}  // namespace dpep
