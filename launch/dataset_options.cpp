#include "launch/dataset_options.h"

#include <fmt/format.h>

namespace po = boost::program_options;

namespace dpep {

void DatasetOptions::add_to(po::options_description& d) {
  // clang-format off
  d.add_options()
      ("dataset", po::value(&name)->default_value(name),
       "random, generated-shared-prefix, or sharegpt")
      ("num-prompts", po::value(&random.num_prompts)->default_value(random.num_prompts),
       "requests (random, sharegpt)")
      ("seed", po::value(&random.seed)->default_value(random.seed), "dataset seed")
      ("random-input-len", po::value(&random.input_len)->default_value(random.input_len),
       "max input tokens")
      ("random-output-len", po::value(&random.output_len)->default_value(random.output_len),
       "max output tokens")
      ("random-range-ratio", po::value(&random.range_ratio)->default_value(random.range_ratio),
       "lengths uniform in [len*ratio, len]")
      ("gsp-num-groups", po::value(&gsp.num_groups)->default_value(gsp.num_groups),
       "generated-shared-prefix: groups (one system prompt each)")
      ("gsp-prompts-per-group", po::value(&gsp.prompts_per_group)->default_value(gsp.prompts_per_group),
       "generated-shared-prefix: requests per group")
      ("gsp-system-prompt-len", po::value(&gsp.system_prompt_len)->default_value(gsp.system_prompt_len),
       "generated-shared-prefix: tokens of each system prompt")
      ("gsp-question-len", po::value(&gsp.question_len)->default_value(gsp.question_len),
       "generated-shared-prefix: tokens of each question")
      ("gsp-output-len", po::value(&gsp.output_len)->default_value(gsp.output_len),
       "generated-shared-prefix: output tokens per request")
      ("dataset-path", po::value(&sharegpt.path), "sharegpt: the ShareGPT JSON file")
      ("sharegpt-output-len", po::value(&sharegpt.output_len)->default_value(0),
       "sharegpt: output tokens per request (0: the reference answer's length)")
      ("sharegpt-context-len", po::value(&sharegpt.context_len)->default_value(0),
       "sharegpt: skip conversations whose prompt + output exceed this (0: no limit)");
  // clang-format on
}

void DatasetOptions::validate() const {
  if (name != "random" && name != "generated-shared-prefix" && name != "sharegpt")
    throw std::invalid_argument(
        fmt::format("unknown --dataset '{}' (random, generated-shared-prefix, sharegpt)", name));
  if (name == "sharegpt" && sharegpt.path.empty())
    throw std::invalid_argument("--dataset sharegpt needs --dataset-path FILE");
  if (random.num_prompts < 1) throw std::invalid_argument("--num-prompts must be >= 1");
}

std::vector<Request> DatasetOptions::make(int vocab, const std::vector<int>& excluded,
                                          const text::Tokenizer* tokenizer) const {
  validate();
  if (name == "generated-shared-prefix") {
    SharedPrefixDatasetArgs a = gsp;
    a.seed = random.seed;
    return make_shared_prefix_dataset(a, vocab, excluded);
  }
  if (name == "sharegpt") {
    ShareGptDatasetArgs a = sharegpt;
    a.num_prompts = random.num_prompts;
    a.seed = random.seed;
    auto reqs = make_sharegpt_dataset(a, tokenizer);
    for (const auto& r : reqs)
      for (int t : r.prompt)
        if (t < 0 || t >= vocab)
          throw std::invalid_argument(
              fmt::format("the tokenizer gives id {}, outside the vocabulary of {}", t, vocab));
    return reqs;
  }
  return make_random_dataset(random, vocab, excluded);
}

void DatasetOptions::describe(nlohmann::json& j) const {
  j["dataset_name"] = name;
  j["seed"] = random.seed;
  if (name == "random") {
    j["num_prompts"] = random.num_prompts;
    j["random_input_len"] = random.input_len;
    j["random_output_len"] = random.output_len;
    j["random_range_ratio"] = random.range_ratio;
  } else if (name == "generated-shared-prefix") {
    j["gsp_num_groups"] = gsp.num_groups;
    j["gsp_prompts_per_group"] = gsp.prompts_per_group;
    j["gsp_system_prompt_len"] = gsp.system_prompt_len;
    j["gsp_question_len"] = gsp.question_len;
    j["gsp_output_len"] = gsp.output_len;
  } else {
    j["num_prompts"] = random.num_prompts;
    j["dataset_path"] = sharegpt.path;
    j["sharegpt_output_len"] = sharegpt.output_len;
    j["sharegpt_context_len"] = sharegpt.context_len;
  }
}

}  // namespace dpep
