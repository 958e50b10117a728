// The one reader of sampling parameters from JSON, shared by the HTTP API (launch/serve) and the
// JSONL request files of generate/offline, so both accept and refuse the same values:
//   temperature >= 0; top_p in (0, 1]; top_k -1 or 0 (off) or in [1, vocab]; min_p in [0, 1];
//   seed >= 0; ignore_eos a bool; stop_token_ids integer ids inside the vocabulary.
// Integers may be written as integral floats (4.0). Fields absent or null keep their value.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>

#include "runtime/request.h"

namespace dpep {

// A request field with a bad value; `field()` names it (for the HTTP error's "param").
class RequestFieldError : public std::invalid_argument {
 public:
  RequestFieldError(const std::string& field, const std::string& message)
      : std::invalid_argument(message), field_(field) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Overwrites the fields of `s` present in `j`. vocab_size > 0 bounds top_k and stop_token_ids.
// Throws RequestFieldError.
void read_sampling_fields(const nlohmann::json& j, SamplingParams& s, int vocab_size);

// Typed field readers with the same rules, for the fields each endpoint names its own way
// (max_tokens, max_new_tokens, top_logprobs, ...). `def` when absent or null.
double json_number_field(const nlohmann::json& j, const std::string& name, double def);
int64_t json_int_field(const nlohmann::json& j, const std::string& name, int64_t def);
bool json_bool_field(const nlohmann::json& j, const std::string& name, bool def);

}  // namespace dpep
