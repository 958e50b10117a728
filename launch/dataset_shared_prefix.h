// SGLang bench_serving's generated-shared-prefix dataset: G groups of P requests; every request
// of a group starts with the group's system prompt (S random token ids) followed by its own
// question (Q random ids); every request generates O tokens (ignore_eos). The G*P requests are
// shuffled with the seed; there is no warm-up request. Ids avoid the special tokens.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/request.h"

namespace dpep {

struct SharedPrefixDatasetArgs {
  int num_groups = 64;
  int prompts_per_group = 16;
  int system_prompt_len = 2048;
  int question_len = 128;
  int output_len = 256;
  uint64_t seed = 1;
};

std::vector<Request> make_shared_prefix_dataset(const SharedPrefixDatasetArgs& a, int vocab,
                                                const std::vector<int>& excluded);

}  // namespace dpep
