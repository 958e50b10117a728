#include "runtime/sampling_json.h"

#include <fmt/format.h>

#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

namespace dpep {
namespace {

using nlohmann::json;

const json* present(const json& j, const std::string& name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  throw RequestFieldError(field, message);
}

}  // namespace

double json_number_field(const json& j, const std::string& name, double def) {
  const json* v = present(j, name);
  if (!v) return def;
  if (!v->is_number()) bad(name, fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x)) bad(name, fmt::format("'{}' must be finite", name));
  return x;
}

int64_t json_int_field(const json& j, const std::string& name, int64_t def) {
  const json* v = present(j, name);
  if (!v) return def;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {
    const double x = v->get<double>();
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9e15)
      return static_cast<int64_t>(x);
  }
  bad(name, fmt::format("'{}' must be an integer", name));
}

bool json_bool_field(const json& j, const std::string& name, bool def) {
  const json* v = present(j, name);
  if (!v) return def;
  if (!v->is_boolean()) bad(name, fmt::format("'{}' must be true or false", name));
  return v->get<bool>();
}

void read_sampling_fields(const json& j, SamplingParams& s, int vocab_size) {
  if (!j.is_object()) bad("", "a request must be a JSON object");
  s.temperature = static_cast<float>(json_number_field(j, "temperature", s.temperature));
  if (s.temperature < 0) bad("temperature", "'temperature' must be >= 0");
  s.top_p = static_cast<float>(json_number_field(j, "top_p", s.top_p));
  if (!(s.top_p > 0 && s.top_p <= 1)) bad("top_p", "'top_p' must be in (0, 1]");
  const int64_t top_k = json_int_field(j, "top_k", s.top_k);
  if (top_k < -1 || (vocab_size > 0 && top_k > vocab_size) || top_k > INT32_MAX)
    bad("top_k", vocab_size > 0
                     ? fmt::format("'top_k' must be -1, 0 (off) or in [1, {}]", vocab_size)
                     : std::string("'top_k' must be -1, 0 (off) or a positive count"));
  s.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);
  s.min_p = static_cast<float>(json_number_field(j, "min_p", s.min_p));
  if (s.min_p < 0 || s.min_p > 1) bad("min_p", "'min_p' must be in [0, 1]");
  if (present(j, "seed")) {
    s.seed = json_int_field(j, "seed", -1);
    if (s.seed < 0) bad("seed", "'seed' must be >= 0");
  }
  s.ignore_eos = json_bool_field(j, "ignore_eos", s.ignore_eos);
  if (const json* v = present(j, "stop_token_ids")) {
    if (!v->is_array()) bad("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    s.stop_token_ids.clear();
    for (const auto& x : *v) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        bad("stop_token_ids", "'stop_token_ids' must be a list of token ids >= 0");
      const int t = x.get<int>();
      if (vocab_size > 0 && t >= vocab_size)
        bad("stop_token_ids",
            fmt::format("stop token id {} is outside the vocabulary [0, {})", t, vocab_size));
      s.stop_token_ids.push_back(t);
    }
  }
}

}  // namespace dpep
