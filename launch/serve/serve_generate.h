// The generation endpoints' handlers (/v1/completions, /v1/chat/completions, /generate):
// parse, submit a GenerationSession, answer whole or as SSE (one chunk per engine step,
// ending "data: [DONE]"). A stream whose client went away cancels its request.
#pragma once
#include <httplib.h>

#include "launch/serve/serve_api.h"
#include "launch/serve/serve_source.h"

namespace dpep {

struct GenerateContext {
  ServeSource* source = nullptr;
  const ServeLimits* limits = nullptr;
  bool reasoning_parser = false;
};

// Throws ApiError for request errors found before the response starts.
void handle_generation(ApiKind kind, const httplib::Request& req, httplib::Response& res,
                       const GenerateContext& ctx);

// Sets status and the OpenAI error body.
void write_error(httplib::Response& res, int status, const std::string& message,
                 const std::string& param = "");

}  // namespace dpep
