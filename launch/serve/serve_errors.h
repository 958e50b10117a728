// Errors of the HTTP API in OpenAI's shape: {"error": {"message", "type", "param", "code"}}
// with the HTTP status. Thrown by request parsing and the serve source, caught by the server.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace dpep {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "")
      : std::runtime_error(message), status_(status), param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  // invalid_request_error (400), authentication_error (401), not_found_error (404),
  // rate_limit_error (429), internal_error (500), not_implemented_error (501),
  // service_unavailable_error (503).
  std::string type() const;
  nlohmann::json body() const;  // {"error": {...}}; code = the status, as vLLM sends

 private:
  int status_;
  std::string param_;
};

inline ApiError bad_request(const std::string& message, const std::string& param = "") {
  return ApiError(400, message, param);
}

}  // namespace dpep
