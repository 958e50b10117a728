// SGLang bench_serving's sharegpt dataset: a ShareGPT JSON file (an array of objects whose
// "conversations" (or "conversation") list holds {"from", "value"} turns). Conversations with
// fewer than two turns are dropped, the first two turns are kept (prompt, reference answer),
// the list is shuffled with the seed, then taken in order: the prompt and the answer are
// tokenized (special tokens added, as HF's encode), the output length is the answer's token
// count (or --sharegpt-output-len), and pairs with a prompt or output under 2 tokens, or (with
// --sharegpt-context-len) prompt + output above the context, are skipped, until --num-prompts
// are taken. Prompts are sent as token ids; requests ignore EOS.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/request.h"
#include "runtime/tokenizer/tokenizer.h"

namespace dpep {

struct ShareGptDatasetArgs {
  std::string path;
  int num_prompts = 1000;
  int output_len = 0;   // > 0: every request generates this many tokens
  int context_len = 0;  // > 0: skip pairs whose prompt + output exceed it
  uint64_t seed = 1;
};

// Throws std::invalid_argument (bad file, no tokenizer) with a clear message.
std::vector<Request> make_sharegpt_dataset(const ShareGptDatasetArgs& a,
                                           const text::Tokenizer* tokenizer);

}  // namespace dpep
