#include "launch/dataset_shared_prefix.h"

#include <algorithm>
#include <random>
#include <stdexcept>

namespace dpep {

std::vector<Request> make_shared_prefix_dataset(const SharedPrefixDatasetArgs& a, int vocab,
                                                const std::vector<int>& excluded) {
  if (a.num_groups < 1 || a.prompts_per_group < 1)
    throw std::invalid_argument("--gsp-num-groups and --gsp-prompts-per-group must be >= 1");
  if (a.system_prompt_len < 0 || a.question_len < 0 || a.system_prompt_len + a.question_len < 1)
    throw std::invalid_argument(
        "--gsp-system-prompt-len and --gsp-question-len must be >= 0, with a non-empty prompt");
  if (a.output_len < 1) throw std::invalid_argument("--gsp-output-len must be >= 1");
  if (static_cast<long long>(a.num_groups) * a.prompts_per_group > 10'000'000)
    throw std::invalid_argument("--gsp-num-groups x --gsp-prompts-per-group is too large");
  std::vector<int> allowed;
  for (int v = 0; v < vocab; ++v)
    if (std::find(excluded.begin(), excluded.end(), v) == excluded.end()) allowed.push_back(v);
  if (allowed.empty()) throw std::invalid_argument("no token ids to draw prompts from");
  std::mt19937_64 g(a.seed);
  auto draw = [&](int n, std::vector<int>& out) {
    for (int k = 0; k < n; ++k) out.push_back(allowed[g() % allowed.size()]);
  };
  std::vector<Request> reqs;
  for (int gi = 0; gi < a.num_groups; ++gi) {
    std::vector<int> system;
    draw(a.system_prompt_len, system);
    for (int p = 0; p < a.prompts_per_group; ++p) {
      Request r;
      r.prompt = system;
      draw(a.question_len, r.prompt);
      r.sampling.max_tokens = a.output_len;
      r.sampling.ignore_eos = true;
      reqs.push_back(std::move(r));
    }
  }
  // Fisher-Yates with the dataset's own generator: the same order on every platform.
  for (size_t i = reqs.size(); i > 1; --i) std::swap(reqs[i - 1], reqs[g() % i]);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].id = static_cast<int64_t>(i);
    reqs[i].external_id = std::to_string(i);
  }
  return reqs;
}

}  // namespace dpep
